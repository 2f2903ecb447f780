using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Server;

/// <summary>The HTTP APIs as existing clients call them, on a loopback server with the tiny model.</summary>
public sealed class ServerTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string InitImageBase64() => Convert.ToBase64String(ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));

    [Fact]
    public async Task OpenWebUiStyleTxt2ImgReturnsPngsWithInfotextAndAnInfoString()
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json("""
            {"prompt": "a lighthouse", "negative_prompt": "blurry", "batch_size": 2, "width": 64, "height": 64, "steps": 3, "seed": 42,
             "sampler_name": "Euler a", "url": "http://ignored", "auth": null, "restore_faces": false, "enable_hr": false}
            """));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var images = doc.RootElement.GetProperty("images");
        Assert.Equal(2, images.GetArrayLength());
        var png = Convert.FromBase64String(images[1].GetString()!);
        Assert.StartsWith("a lighthouse\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a", PngText.Read(png)["parameters"]);
        using var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!);
        Assert.Equal(42, info.RootElement.GetProperty("seed").GetInt64());
        Assert.Equal(new long[] { 42, 43 }, info.RootElement.GetProperty("all_seeds").EnumerateArray().Select(s => s.GetInt64()));
        Assert.Equal(64, info.RootElement.GetProperty("width").GetInt32());
        Assert.Equal(2, info.RootElement.GetProperty("infotexts").GetArrayLength());
    }

    [Fact]
    public async Task SillyTavernStyleLenientTypesAndProgressPolling()
    {
        var run = Http.PostAsync("/sdapi/v1/txt2img", Json("""
            {"prompt": "a castle", "steps": "30", "cfg_scale": "6", "width": 64, "height": "64", "seed": "7", "sampler_name": "DPM++ 2M",
             "scheduler": "Karras", "restore_faces": 0, "denoising_strength": null, "override_settings": {}}
            """));
        bool sawProgress = false;
        for (int i = 0; i < 400 && !run.IsCompleted; i++)
        {
            using var p = JsonDocument.Parse(await Http.GetStringAsync("/sdapi/v1/progress"));
            if (p.RootElement.GetProperty("state").GetProperty("job_count").GetInt32() > 0 && p.RootElement.GetProperty("progress").GetDouble() > 0) sawProgress = true;
            await Task.Delay(10);
        }
        var res = await run;
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        Assert.Contains("Sampler: DPM++ 2M Karras", JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!).RootElement.GetProperty("infotexts")[0].GetString());
        Assert.True(sawProgress, "progress should move while the job runs");
        using var idle = JsonDocument.Parse(await Http.GetStringAsync("/sdapi/v1/progress"));
        Assert.Equal(0, idle.RootElement.GetProperty("state").GetProperty("job_count").GetInt32());
    }

    [Fact]
    public async Task Img2ImgTakesDataUrisAndNeedsAnImage()
    {
        var res = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 4, "denoising_strength": 0.5, "init_images": ["data:image/png;base64,{{InitImageBase64()}}"]}"""));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Contains("Denoising strength: 0.5", await res.Content.ReadAsStringAsync());
        var missing = await Http.PostAsync("/sdapi/v1/img2img", Json("""{"prompt": "x"}"""));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("Init image not found", await missing.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/sdapi/v1/txt2img", "{not json", "not valid JSON")]
    [InlineData("/sdapi/v1/txt2img", "[1, 2]", "expected an object")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "steps": "many"}""", "steps")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "steps": -5}""", "steps is -5")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "width": 100000, "steps": 2}""", "width is 100000")]
    [InlineData("/sdapi/v1/txt2img", """{"prompt": "x", "sampler_name": "Heun++"}""", "Sampler not found")]
    [InlineData("/sdapi/v1/img2img", """{"prompt": "x", "init_images": ["!!!not base64!!!"]}""", "not valid base64")]
    [InlineData("/sdapi/v1/img2img", """{"prompt": "x", "init_images": ["aGVsbG8gd29ybGQ="]}""", "not a readable image")]
    [InlineData("/sdapi/v1/img2img", """{"prompt": "x", "init_images": ["https://example.com/cat.png"]}""", "does not fetch images from URLs")]
    [InlineData("/sdapi/v1/options", """{"sd_model_checkpoint": "no-such-model"}""", "is not listed")]
    [InlineData("/v1/images/generations", """{"prompt": "x", "size": "huge"}""", "not WIDTHxHEIGHT")]
    [InlineData("/v1/images/generations", """{"prompt": "x", "n": 50}""", "n is 50")]
    [InlineData("/v1/images/generations", """{"prompt": "x", "response_format": "gif"}""", "response_format")]
    [InlineData("/api/v1/jobs", """{"steps": 3}""", "prompt is required")]
    public async Task BadInputIsA4xxWithAClearMessage(string path, string body, string message)
    {
        var res = await Http.PostAsync(path, Json(body));
        int status = (int)res.StatusCode;
        Assert.InRange(status, 400, 499);
        Assert.Contains(message, await res.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task CataloguesAndOptionsAnswerAsA1111Clients()
    {
        foreach (var path in new[] { "upscalers", "latent-upscale-modes", "sd-vae", "hypernetworks", "face-restorers", "realesrgan-models", "prompt-styles", "embeddings", "cmd-flags", "schedulers" })
            Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/sdapi/v1/" + path)).StatusCode);
        var samplers = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/samplers");
        Assert.Contains(samplers.EnumerateArray(), s => s.GetProperty("name").GetString() == "Euler a");
        var models = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/sd-models");
        string title = models[0].GetProperty("title").GetString()!;
        var options = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options");
        Assert.Equal(title, options.GetProperty("sd_model_checkpoint").GetString());
        // Clients POST back the whole dict they read; the answer is JSON null.
        var post = await Http.PostAsync("/sdapi/v1/options", Json(options.GetRawText()));
        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.Equal("null", await post.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/")).StatusCode);
    }

    [Fact]
    public async Task PngInfoReadsOurInfotext()
    {
        var gen = await Http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "a red barn", "steps": 2, "seed": 3}"""));
        using var doc = JsonDocument.Parse(await gen.Content.ReadAsStringAsync());
        string image = doc.RootElement.GetProperty("images")[0].GetString()!;
        var info = await (await Http.PostAsync("/sdapi/v1/png-info", Json(JsonSerializer.Serialize(new { image })))).Content.ReadFromJsonAsync<JsonElement>();
        Assert.StartsWith("a red barn\nSteps: 2", info.GetProperty("info").GetString());
        Assert.Equal("3", info.GetProperty("items").GetProperty("Seed").GetString());
    }

    [Fact]
    public async Task OpenAiGenerationsAsBase64AndAsUrl()
    {
        var b64 = await Http.PostAsync("/v1/images/generations", Json("""{"prompt": "a fox", "size": "64x64", "n": 2, "response_format": "b64_json"}"""));
        var body = await b64.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(2, body.GetProperty("data").GetArrayLength());
        Assert.True(body.GetProperty("created").GetInt64() > 0);
        Assert.Equal(137, Convert.FromBase64String(body.GetProperty("data")[0].GetProperty("b64_json").GetString()!)[0]);

        var url = await Http.PostAsync("/v1/images/generations", Json("""{"prompt": "a fox", "size": "64x64", "output_format": "jpeg"}"""));
        string link = (await url.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].GetProperty("url").GetString()!;
        var file = await Http.GetAsync(link);
        Assert.Equal("image/jpeg", file.Content.Headers.ContentType!.MediaType);
        Assert.Equal(0xFF, (await file.Content.ReadAsByteArrayAsync())[0]);
    }

    [Fact]
    public async Task OpenAiEditsTakeMultipartImages()
    {
        using var form = new MultipartFormDataContent();
        var image = new ByteArrayContent(Convert.FromBase64String(InitImageBase64()));
        image.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(image, "image[]", "init.png");
        form.Add(new StringContent("make it snowy"), "prompt");
        form.Add(new StringContent("b64_json"), "response_format");
        form.Add(new StringContent("64x64"), "size");
        var res = await Http.PostAsync("/v1/images/edits", form);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        var png = Convert.FromBase64String((await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].GetProperty("b64_json").GetString()!);
        Assert.Contains("Denoising strength", PngText.Read(png)["parameters"]);

        using var noImage = new MultipartFormDataContent { { new StringContent("x"), "prompt" } };
        var bad = await Http.PostAsync("/v1/images/edits", noImage);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var error = (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("image", error.GetProperty("param").GetString());
        Assert.True(error.TryGetProperty("code", out _) && error.TryGetProperty("type", out _));
    }

    [Fact]
    public async Task OpenAiStreamingSendsPartialImagesThenTheResult()
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/images/generations")
        {
            Content = Json("""{"prompt": "a fox", "size": "64x64", "stream": true, "partial_images": 2}"""),
        };
        var res = await Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", res.Content.Headers.ContentType!.MediaType);
        string text = await res.Content.ReadAsStringAsync();
        int partial = text.IndexOf("event: image_generation.partial_image", StringComparison.Ordinal);
        int completed = text.IndexOf("event: image_generation.completed", StringComparison.Ordinal);
        Assert.True(partial >= 0 && completed > partial, text.Length > 300 ? text[..300] : text);
    }

    [Fact]
    public async Task NativeJobsSubmitStreamAndDownload()
    {
        var res = await Http.PostAsync("/api/v1/jobs", Json("""{"prompt": "a boat", "steps": 3, "seed": 9, "scheduler": "Euler", "n": 2}"""));
        Assert.Equal(HttpStatusCode.Accepted, res.StatusCode);
        string id = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        string events = await Http.GetStringAsync($"/api/v1/jobs/{id}/events");
        var names = events.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..]).ToList();
        Assert.Equal("queued", names[0]);
        Assert.Equal("started", names[1]);
        Assert.Equal(6, names.Count(n => n == "step"));
        Assert.Equal("done", names[^1]);
        Assert.True(names.LastIndexOf("step") < names.LastIndexOf("image"));
        var job = await Http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        var png = await Http.GetByteArrayAsync(job.GetProperty("images")[1].GetProperty("url").GetString());
        Assert.Contains("Seed: 10", PngText.Read(png)["parameters"]);
        Assert.Equal(HttpStatusCode.NotFound, (await Http.GetAsync("/api/v1/jobs/nope")).StatusCode);
    }

    [Fact]
    public async Task DeleteCancelsARunningJob()
    {
        var res = await Http.PostAsync("/api/v1/jobs", Json("""{"prompt": "slow", "steps": 100, "width": 256, "height": 256}"""));
        string id = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await Task.Delay(100);
        Assert.Equal(HttpStatusCode.OK, (await Http.DeleteAsync($"/api/v1/jobs/{id}")).StatusCode);
        for (int i = 0; i < 100; i++)
        {
            var job = await Http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
            if (job.GetProperty("state").GetString() == "cancelled") return;
            await Task.Delay(50);
        }
        Assert.Fail("the job was not cancelled");
    }

    [Fact]
    public async Task ClientDisconnectCancelsItsJob()
    {
        using var cancel = new CancellationTokenSource();
        var call = Http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "long", "steps": 100, "width": 256, "height": 256}"""), cancel.Token);
        // Hang up once the job is in the engine (a fixed delay can end before the request got there on a busy machine).
        for (int i = 0; i < 600; i++)
        {
            using var p = JsonDocument.Parse(await Http.GetStringAsync("/sdapi/v1/progress"));
            if (p.RootElement.GetProperty("state").GetProperty("job_count").GetInt32() > 0) break;
            await Task.Delay(50);
        }
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        for (int i = 0; i < 200; i++)
        {
            string metrics = await Http.GetStringAsync("/metrics");
            if (metrics.Contains("asyncdiffusion_jobs_cancelled_total 1")) return;
            await Task.Delay(50);
        }
        Assert.Fail("the abandoned job was not cancelled");
    }

    [Fact]
    public async Task TheJobsApiHasAnOpenApiDocument()
    {
        var doc = await Http.GetFromJsonAsync<JsonElement>("/api/v1/openapi.json");
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString());
        Assert.True(doc.GetProperty("paths").TryGetProperty("/api/v1/jobs/{id}/events", out _));
    }

    [Fact]
    public async Task HealthReadyAndMetrics()
    {
        Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync("/health")).StatusCode);
        string ready = await Http.GetStringAsync("/ready");
        Assert.Contains("\"status\":\"ready\"", ready);
        Assert.Contains("\"why\":", ready); // the engine configuration and the reason for it
        await Http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2}"""));
        string metrics = await Http.GetStringAsync("/metrics");
        Assert.Contains("asyncdiffusion_queue_depth", metrics);
        Assert.Contains("asyncdiffusion_job_seconds_count", metrics);
        Assert.Contains("asyncdiffusion_step_seconds_bucket", metrics);
    }
}

public sealed class ServerLoadAndAuthTests
{
    [Fact]
    public async Task BurstBeyondTheQueueGets429sAndLosesNothing()
    {
        await using var server = await TestServer.StartAsync(o => o with { Engine = o.Engine with { MaxJobs = 8 } });
        using var gate = new SemaphoreSlim(32);
        var codes = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                var res = await server.Client.PostAsync("/sdapi/v1/txt2img",
                    new StringContent($$"""{"prompt": "burst {{i % 5}}", "steps": 1, "cfg_scale": 1}""", Encoding.UTF8, "application/json"));
                if (res.StatusCode == HttpStatusCode.TooManyRequests) Assert.True(res.Headers.RetryAfter is not null);
                return (int)res.StatusCode;
            }
            finally
            {
                gate.Release();
            }
        }));
        Assert.All(codes, c => Assert.True(c is 200 or 429, $"status {c}"));
        Assert.Contains(200, codes);
        Assert.Contains(429, codes);
        string metrics = await server.Client.GetStringAsync("/metrics");
        Assert.Contains($"asyncdiffusion_jobs_succeeded_total {codes.Count(c => c == 200)}", metrics);
        Assert.Contains("asyncdiffusion_running_jobs 0", metrics);
    }

    [Fact]
    public async Task OversizedBodiesAre413()
    {
        await using var server = await TestServer.StartAsync(o => o with { MaxBodyBytes = 2000 });
        var body = new StringContent($$"""{"prompt": "{{new string('x', 5000)}}"}""", Encoding.UTF8, "application/json");
        var res = await server.Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, res.StatusCode);
        Assert.Contains("too large", await res.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ClientsSwitchModelsThroughOptions()
    {
        await using var server = await TestServer.StartAsync(o => o with { Models = [TinyModels.Folder("optimum"), TinyModels.Folder("optimum-1.24")] });
        var http = server.Client;
        var models = await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/sd-models");
        Assert.Equal(2, models.GetArrayLength());
        string second = models[1].GetProperty("title").GetString()!;
        var post = await http.PostAsync("/sdapi/v1/options", new StringContent(JsonSerializer.Serialize(new { sd_model_checkpoint = second }), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, post.StatusCode);
        Assert.Equal(second, (await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("sd_model_checkpoint").GetString());
        var gen = await http.PostAsync("/sdapi/v1/txt2img", new StringContent("""{"prompt": "x", "steps": 2}""", Encoding.UTF8, "application/json"));
        Assert.Contains("Model: optimum-1.24", await gen.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task KeysAndCredentialsGuardEveryApiRoute()
    {
        await using var server = await TestServer.StartAsync(o => o with { ApiKey = "sekrit", ApiAuth = "user:pass" });
        var http = server.Client;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        var sd = await http.GetAsync("/sdapi/v1/sd-models");
        Assert.Equal(HttpStatusCode.Unauthorized, sd.StatusCode);
        Assert.Equal("Basic", sd.Headers.WwwAuthenticate.First().Scheme);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync("/v1/images/generations", new StringContent("{}", Encoding.UTF8, "application/json"))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/v1/jobs/x")).StatusCode);

        var basic = new HttpRequestMessage(HttpMethod.Get, "/sdapi/v1/sd-models");
        basic.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass")));
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(basic)).StatusCode);
        var wrong = new HttpRequestMessage(HttpMethod.Get, "/sdapi/v1/sd-models");
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("user:nope")));
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        var bearer = new HttpRequestMessage(HttpMethod.Get, "/api/v1/jobs/x");
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sekrit");
        Assert.Equal(HttpStatusCode.NotFound, (await http.SendAsync(bearer)).StatusCode);

        // An image handed out by URL opens without credentials, as clients fetch it directly.
        var generate = new HttpRequestMessage(HttpMethod.Post, "/v1/images/generations") { Content = new StringContent("""{"prompt": "x", "size": "64x64"}""", Encoding.UTF8, "application/json") };
        generate.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sekrit");
        var url = (await (await http.SendAsync(generate)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].GetProperty("url").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(url)).StatusCode);
    }
}
