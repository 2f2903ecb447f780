using System.Text;
using System.Text.Json;
using AsyncDiffusion.Evaluation;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Serving the built-in model as <c>serve</c> does without --model: its guidance scale for requests that give none.</summary>
public sealed class BuiltInModelServerTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(o => o with
    {
        Models = [TinyShapesModelTests.Folder],
        DefaultGuidanceScale = TinyShapesModel.GuidanceScale,
    });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<(RgbImage Image, string Infotext)> Txt2Img(string json)
    {
        var res = await _server.Client.PostAsync("/sdapi/v1/txt2img", new StringContent(json, Encoding.UTF8, "application/json"));
        res.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var png = Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!);
        return (ImageCodec.Decode(png, "response"), PngText.Read(png)["parameters"]);
    }

    [Fact]
    public async Task ARequestWithoutGuidanceGetsTheModelsAndDrawsWhatItAsks()
    {
        var (image, infotext) = await Txt2Img("""{"prompt": "a red circle on a blue background", "seed": 42}""");
        Assert.Contains("CFG scale: 2.5", infotext);
        var verdict = ShapeJudge.Judge(image, new ShapeScene("blue", [new ShapeObject("circle", "red")]));
        Assert.True(verdict.BackgroundRight && verdict.ObjectColourRight && verdict.ShapeRight, verdict.ToString());
    }

    [Fact]
    public async Task AnExplicitGuidanceScaleIsKept()
    {
        var (_, infotext) = await Txt2Img("""{"prompt": "a red circle on a blue background", "seed": 1, "steps": 4, "cfg_scale": 6}""");
        Assert.Contains("CFG scale: 6", infotext);
    }
}
