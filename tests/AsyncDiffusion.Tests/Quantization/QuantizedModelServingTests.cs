using System.Net;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Tests.Server;

namespace AsyncDiffusion.Tests.Quantization;

public class QuantizedModelServingTests
{
    [Fact]
    public async Task ServerServesAQuantizedFolderLikeAnyOther()
    {
        await using var server = await TestServer.StartAsync(o => o with { Models = [QuantizedTinyModels.Folder] });
        var res = await server.Client.PostAsync("/sdapi/v1/txt2img",
            new StringContent("""{"prompt": "a lighthouse", "steps": 3, "seed": 1, "width": 64, "height": 64}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Equal(1, doc.RootElement.GetProperty("images").GetArrayLength());
        Assert.Contains("Model: tiny-int8", doc.RootElement.GetProperty("info").GetString());
    }
}
