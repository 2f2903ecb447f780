using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// Hires fix and variation seeds as A1111 clients send them to <c>/sdapi/v1/txt2img</c>, and the
/// same through the native jobs API: the larger image, A1111's infotext keys and <c>info</c>
/// fields, the upscaler catalogues, and 400s that list what is available.
/// </summary>
public sealed class HiresServerTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private const string Txt2Img = """
        {"prompt": "a lighthouse", "negative_prompt": "fog", "steps": 3, "seed": 21, "cfg_scale": 6, "sampler_name": "Euler", "width": 64, "height": 64,
         "batch_size": 2, "subseed": 100, "subseed_strength": 0.25, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
         "enable_hr": true, "hr_scale": 2, "hr_upscaler": "Latent (bicubic)", "hr_second_pass_steps": 2, "denoising_strength": 0.6,
         "hr_sampler_name": "", "hr_prompt": "", "hr_negative_prompt": "", "hr_resize_x": 0, "hr_resize_y": 0}
        """;

    [Fact]
    public async Task HiresAndVariationFieldsMakeTheLargerImageWithA1111sInfotextAndInfo()
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json(Txt2Img));
        string text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var images = doc.RootElement.GetProperty("images").EnumerateArray().Select(i => Convert.FromBase64String(i.GetString()!)).ToArray();
        Assert.Equal(2, images.Length);
        var first = ImageCodec.Decode(images[0], "image 0");
        Assert.Equal((128, 128), (first.Width, first.Height));

        using var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!);
        var i = info.RootElement;
        Assert.Equal(64, i.GetProperty("width").GetInt32()); // A1111 reports the first pass's size
        Assert.Equal([21L, 21L], i.GetProperty("all_seeds").EnumerateArray().Select(s => s.GetInt64()));
        Assert.Equal([100L, 101L], i.GetProperty("all_subseeds").EnumerateArray().Select(s => s.GetInt64()));
        Assert.Equal(0.25, i.GetProperty("subseed_strength").GetDouble());
        Assert.Equal(0.6, i.GetProperty("denoising_strength").GetDouble());
        string infotext = i.GetProperty("infotexts")[1].GetString()!;
        Assert.Contains("Seed: 21, Size: 64x64, Model: ", infotext);
        Assert.Contains(", Variation seed: 101, Variation seed strength: 0.25, Denoising strength: 0.6, RNG: CPU, Hires upscale: 2, Hires steps: 2, Hires upscaler: Latent (bicubic), Version: AsyncDiffusion", infotext);

        // png-info reads the keys back.
        var pngInfo = await Http.PostAsJsonAsync("/sdapi/v1/png-info", new { image = Convert.ToBase64String(images[1]) });
        var items = (await pngInfo.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items");
        Assert.Equal("Latent (bicubic)", items.GetProperty("Hires upscaler").GetString());
        Assert.Equal("101", items.GetProperty("Variation seed").GetString());

        // The native jobs API with the same settings makes the same image.
        var job = await Http.PostAsync("/api/v1/jobs", Json("""
            {"prompt": "a lighthouse", "negative_prompt": "fog", "steps": 3, "seed": 21, "guidance_scale": 6, "scheduler": "Euler", "n": 2,
             "subseed": 100, "subseed_strength": 0.25, "hires": {"scale": 2, "upscaler": "Latent (bicubic)", "steps": 2, "denoising_strength": 0.6}}
            """));
        Assert.Equal(HttpStatusCode.Accepted, job.StatusCode);
        string id = (await job.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        JsonElement described;
        do
        {
            await Task.Delay(100);
            described = await Http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        }
        while (described.GetProperty("state").GetString() is "queued" or "running");
        Assert.Equal("succeeded", described.GetProperty("state").GetString());
        Assert.Equal(128, described.GetProperty("width").GetInt32());
        Assert.Equal([100L, 101L], described.GetProperty("subseeds").EnumerateArray().Select(s => s.GetInt64()));
        var native = ImageCodec.Decode(await Http.GetByteArrayAsync($"/api/v1/jobs/{id}/images/1"), "job image");
        Assert.Equal(ImageCodec.Decode(images[1], "image 1").Pixels, native.Pixels);
        Assert.Equal(infotext, described.GetProperty("images")[1].GetProperty("infotext").GetString());
    }

    [Theory]
    [InlineData("""{"prompt": "x", "steps": 2, "enable_hr": true, "hr_upscaler": "R-ESRGAN 4x+"}""",
        "hires upscaler 'R-ESRGAN 4x+' is not available; available: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest")]
    [InlineData("""{"prompt": "x", "steps": 2, "enable_hr": true, "hr_sampler_name": "Warp"}""", "hires: Sampler not found: 'Warp'; available: ")]
    [InlineData("""{"prompt": "x", "steps": 2, "enable_hr": true, "hr_scale": 8}""", "hires width (64x64 × hires scale 8) is 512; expected a multiple of 8 from 16 to 256")]
    [InlineData("""{"prompt": "x", "steps": 2, "width": 64, "height": 256, "enable_hr": true, "hr_resize_x": 256, "hr_resize_y": 64}""", "hires fix would upscale to 256x1024 (hires resize 256x64 from 64x256); expected at most 512x512 before cropping")]
    [InlineData("""{"prompt": "x", "steps": 2, "subseed_strength": 2}""", "subseed strength (variation strength) is 2; expected 0 to 1")]
    public async Task BadHiresAndVariationFieldsAreA400SayingWhatIsExpected(string body, string message)
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json(body));
        string text = await res.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains(message, text);
    }

    [Fact]
    public async Task HiresFieldsWithoutEnableHrAreIgnoredAsInA1111()
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2, "enable_hr": false, "hr_upscaler": "R-ESRGAN 4x+", "hr_scale": 2}"""));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Equal(64, ImageCodec.Decode(Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!), "image").Width);
    }

    [Fact]
    public async Task UpscalerCataloguesListWhatHiresFixCanUse()
    {
        var upscalers = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/upscalers");
        Assert.Equal(["None", "Lanczos", "Nearest"], upscalers.EnumerateArray().Select(u => u.GetProperty("name").GetString()!));
        var modes = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/latent-upscale-modes");
        Assert.Equal(["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"],
            modes.EnumerateArray().Select(u => u.GetProperty("name").GetString()!));
    }
}
