using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// A1111's settings and the generation features clients set through them: /sdapi/v1/options
/// keeps every key (and persists them), override_settings applies per request, clip skip,
/// tiling, n_iter × batch_size, and the info's list of what was not applied.
/// </summary>
public sealed class A1111SettingsTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<(string Infotext, JsonElement Info, byte[] Image)> Txt2Img(HttpClient http, string body)
    {
        var res = await http.PostAsync("/sdapi/v1/txt2img", Json(body));
        string text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!).RootElement.Clone();
        var image = Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!);
        return (info.GetProperty("infotexts")[0].GetString()!, info, image);
    }

    private static string[] NotApplied(JsonElement info) => info.GetProperty("not_applied").EnumerateArray().Select(e => e.GetString()!).ToArray();

    [Fact]
    public async Task A1111sOwnOptionsWriteTestPasses()
    {
        // test/test_utils.py::test_options_write, step by step.
        var before = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options");
        bool pre = before.GetProperty("send_seed").GetBoolean();
        Assert.Equal(HttpStatusCode.OK, (await Http.PostAsync("/sdapi/v1/options", Json($$"""{"send_seed": {{(!pre).ToString().ToLowerInvariant()}}}"""))).StatusCode);
        var after = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options");
        Assert.Equal(!pre, after.GetProperty("send_seed").GetBoolean());
        await Http.PostAsync("/sdapi/v1/options", Json($$"""{"send_seed": {{pre.ToString().ToLowerInvariant()}}}"""));
        Assert.Equal(pre, (await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("send_seed").GetBoolean());
    }

    [Fact]
    public async Task OptionsOfEveryShapeSurviveARestartInTheirFile()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "config", "sdapi-options.json");
        await using (var first = await TestServer.StartAsync(o => o with { SdapiOptionsFile = file }))
        {
            var post = await first.Client.PostAsync("/sdapi/v1/options", Json("""
                {"send_seed": false, "CLIP_stop_at_last_layers": 2, "an_extension": {"list": [1, "two", null]}, "samples_format": "webp"}
                """));
            Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        }
        Assert.True(File.Exists(file));
        await using var second = await TestServer.StartAsync(o => o with { SdapiOptionsFile = file });
        var options = await second.Client.GetFromJsonAsync<JsonElement>("/sdapi/v1/options");
        Assert.False(options.GetProperty("send_seed").GetBoolean());
        Assert.Equal(2, options.GetProperty("CLIP_stop_at_last_layers").GetInt32());
        Assert.Equal("""{"list":[1,"two",null]}""", options.GetProperty("an_extension").GetRawText());
        // The settings it uses take effect after the restart.
        var res = await second.Client.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2, "seed": 1}"""));
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var webp = Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!);
        Assert.Equal("RIFF", Encoding.ASCII.GetString(webp, 0, 4));
        Assert.Contains("Clip skip: 2", doc.RootElement.GetProperty("info").GetString());
    }

    [Fact]
    public async Task ClipSkipFromOverrideSettingsShapesOneRequestAndIsRestoredAfterwards()
    {
        const string request = """{"prompt": "a harbour", "steps": 2, "seed": 5, "width": 64, "height": 64""";
        var plain = await Txt2Img(Http, request + "}");
        var skipped = await Txt2Img(Http, request + """, "override_settings": {"CLIP_stop_at_last_layers": 2}}""");
        Assert.DoesNotContain("Clip skip", plain.Infotext);
        Assert.Contains(", Clip skip: 2, RNG: CPU", skipped.Infotext);
        Assert.Equal(2, skipped.Info.GetProperty("clip_skip").GetInt32());
        Assert.NotEqual(plain.Image, skipped.Image);
        Assert.Equal(1, (await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("CLIP_stop_at_last_layers").GetInt32());

        // Not restored: the override becomes the setting, and the same setting makes the same image.
        var kept = await Txt2Img(Http, request + """, "override_settings": {"CLIP_stop_at_last_layers": 2}, "override_settings_restore_afterwards": false}""");
        Assert.Equal(skipped.Image, kept.Image);
        Assert.Equal(2, (await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("CLIP_stop_at_last_layers").GetInt32());
        Assert.Equal(skipped.Image, (await Txt2Img(Http, request + "}")).Image);
        await Http.PostAsync("/sdapi/v1/options", Json("""{"CLIP_stop_at_last_layers": 1}"""));
        Assert.Equal(plain.Image, (await Txt2Img(Http, request + "}")).Image);
    }

    [Theory]
    [InlineData("/sdapi/v1/options", """{"CLIP_stop_at_last_layers": 0}""", "CLIP_stop_at_last_layers is 0; expected a whole number from 1 to 24")]
    [InlineData("/sdapi/v1/options", """{"randn_source": "TPU", "send_seed": false}""", "randn_source is \"TPU\"; expected CPU, GPU or NV")]
    [InlineData("/sdapi/v1/options", """{"samples_format": "avif"}""", "samples_format is \"avif\"; expected png, jpg or webp")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "override_settings": {"eta_ddim": 3}}""", "override_settings.eta_ddim is 3; expected 0 to 1")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "override_settings": "clip skip 2"}""", "override_settings must be an object")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "steps": 1, "override_settings": {"CLIP_stop_at_last_layers": 3}}""", "this model's text encoder has 2 layers, so expected 1 to 2")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}}""", "override_settings.sd_model_checkpoint")]
    public async Task BadSettingsAreRefusedNamingTheSetting(string path, string body, string message)
    {
        var res = await Http.PostAsync(path, Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains(message, System.Text.RegularExpressions.Regex.Unescape(await res.Content.ReadAsStringAsync()));
        // A refused write keeps nothing, not even its valid keys.
        Assert.True((await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("send_seed").GetBoolean());
    }

    [Fact]
    public async Task TilingIsHonouredAndWrittenAsA1111Writes()
    {
        const string request = """{"prompt": "cobblestones", "steps": 2, "seed": 9, "width": 64, "height": 64""";
        var tiled = await Txt2Img(Http, request + """, "tiling": true}""");
        var plain = await Txt2Img(Http, request + """, "tiling": false}""");
        Assert.Contains(", Tiling: True", tiled.Infotext);
        Assert.True(tiled.Info.GetProperty("tiling").GetBoolean());
        Assert.NotEqual(plain.Image, tiled.Image);
        Assert.Empty(NotApplied(tiled.Info));
    }

    [Fact]
    public async Task InfoListsTheRequestedFeaturesThatWereNotApplied()
    {
        var (_, info, _) = await Txt2Img(Http, """
            {"prompt": "a face", "steps": 2, "restore_faces": true, "script_name": "x/y/z plot", "styles": ["cinematic"],
             "alwayson_scripts": {"ADetailer": {"args": []}}, "sampler_name": "Euler a", "eta": 0.5, "s_churn": 0.2,
             "override_settings": {"eta_noise_seed_delta": 31337, "sd_vae": "vae-ft-mse.safetensors", "img2img_color_correction": true}}
            """);
        var notApplied = NotApplied(info);
        foreach (var expected in new[]
        {
            "restore_faces: face restoration is not available", "script_name 'x/y/z plot': scripts are not available",
            "alwayson_scripts (ADetailer): scripts are not available", "styles: prompt styles are not available", "eta 0.5: Euler a",
            "s_churn: k-diffusion sampler parameters", "eta_noise_seed_delta", "sd_vae 'vae-ft-mse.safetensors'", "override_settings.img2img_color_correction",
        })
            Assert.Contains(notApplied, n => n.StartsWith(expected, StringComparison.Ordinal));
        Assert.Equal(9, notApplied.Length);

        // A1111's own txt2img test payload: everything at its defaults, except an eta Euler a cannot take.
        var (_, defaults, _) = await Txt2Img(Http, """
            {"batch_size": 1, "cfg_scale": 7, "denoising_strength": 0, "enable_hr": false, "eta": 0, "firstphase_height": 0, "firstphase_width": 0,
             "height": 64, "n_iter": 1, "negative_prompt": "", "prompt": "example prompt", "restore_faces": false, "s_churn": 0, "s_noise": 1,
             "s_tmax": 0, "s_tmin": 0, "sampler_index": "Euler a", "seed": -1, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "steps": 3,
             "styles": [], "subseed": -1, "subseed_strength": 0, "tiling": false, "width": 64}
            """);
        Assert.Equal(["eta 0: Euler a draws its noise as diffusers does (eta 1)"], NotApplied(defaults));
    }

    [Fact]
    public async Task NIterTimesBatchSizeMakesThatManyImagesWithConsecutiveSeeds()
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2, "seed": 10, "n_iter": 2, "batch_size": 2}"""));
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Equal(4, doc.RootElement.GetProperty("images").GetArrayLength());
        using var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!);
        Assert.Equal(new long[] { 10, 11, 12, 13 }, info.RootElement.GetProperty("all_seeds").EnumerateArray().Select(s => s.GetInt64()));
        Assert.Equal(2, info.RootElement.GetProperty("batch_size").GetInt32());
        Assert.Equal(2, info.RootElement.GetProperty("n_iter").GetInt32());
    }

    [Fact]
    public async Task RandnSourceAndEtaSettingsReachTheSampler()
    {
        var nv = await Txt2Img(Http, """{"prompt": "x", "steps": 2, "seed": 4, "override_settings": {"randn_source": "NV"}}""");
        var gpu = await Txt2Img(Http, """{"prompt": "x", "steps": 2, "seed": 4, "override_settings": {"randn_source": "GPU"}}""");
        var cpu = await Txt2Img(Http, """{"prompt": "x", "steps": 2, "seed": 4}""");
        Assert.Contains("RNG: NV", nv.Infotext);
        Assert.Equal(nv.Image, gpu.Image); // A1111's GPU and NV sources draw the same numbers
        Assert.NotEqual(cpu.Image, nv.Image);

        var ddim = await Txt2Img(Http, """{"prompt": "x", "steps": 2, "seed": 4, "sampler_name": "DDIM", "override_settings": {"eta_ddim": 0.25}}""");
        Assert.Contains("Eta: 0.25", ddim.Infotext);
        var explicitEta = await Txt2Img(Http, """{"prompt": "x", "steps": 2, "seed": 4, "sampler_name": "DDIM", "eta": 0.5, "override_settings": {"eta_ddim": 0.25}}""");
        Assert.Contains("Eta: 0.5", explicitEta.Infotext);
        Assert.Empty(NotApplied(explicitEta.Info));
    }

    [Fact]
    public async Task TheJobsApiTakesClipSkipAndTiling()
    {
        var res = await Http.PostAsync("/api/v1/jobs", Json("""{"prompt": "tiles", "steps": 2, "seed": 3, "clip_skip": 2, "tiling": true}"""));
        Assert.Equal(HttpStatusCode.Accepted, res.StatusCode);
        string id = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        for (int i = 0; i < 600; i++)
        {
            var job = await Http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
            Assert.DoesNotContain(job.GetProperty("state").GetString(), new[] { "failed", "cancelled" });
            if (job.GetProperty("state").GetString() == "succeeded")
            {
                var png = await Http.GetByteArrayAsync($"/api/v1/jobs/{id}/images/0");
                Assert.Contains(", Clip skip: 2, RNG: CPU, Tiling: True", PngText.Read(png)["parameters"]);
                var refused = await Http.PostAsync("/api/v1/jobs", Json("""{"prompt": "tiles", "clip_skip": 30}"""));
                Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
                Assert.Contains("clip_skip is 30; expected 1 to 24", await refused.Content.ReadAsStringAsync());
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail("the job did not finish");
    }

    [Fact]
    public async Task ACheckpointInOverrideSettingsServesOneRequestUnlessKept()
    {
        await using var server = await TestServer.StartAsync(o => o with { Models = [TinyModels.Folder("optimum"), TinyModels.Folder("optimum-1.24")] });
        var http = server.Client;
        var models = await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/sd-models");
        string first = models[0].GetProperty("title").GetString()!, second = models[1].GetProperty("title").GetString()!;
        string Checkpoint() => http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options").Result.GetProperty("sd_model_checkpoint").GetString()!;

        var once = await Txt2Img(http, $$$"""{"prompt": "x", "steps": 2, "override_settings": {"sd_model_checkpoint": "{{{second}}}"}}""");
        Assert.Contains("Model: optimum-1.24", once.Infotext);
        Assert.Equal(first, Checkpoint());
        var kept = await Txt2Img(http, $$$"""{"prompt": "x", "steps": 2, "override_settings": {"sd_model_checkpoint": "{{{second}}}"}, "override_settings_restore_afterwards": false}""");
        Assert.Contains("Model: optimum-1.24", kept.Infotext);
        Assert.Equal(second, Checkpoint());
    }
}
