using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Server.Configuration;
using Microsoft.Extensions.Logging;

namespace AsyncDiffusion.Tests.Server;

/// <summary>What browsers and networks can do to a server: cross-site posts, DNS rebinding, forged Host headers, logs and credentials.</summary>
public sealed class NetworkSecurityTests
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static HttpRequestMessage WithHost(HttpMethod method, string path, string host, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Host = host;
        return request;
    }

    [Fact]
    public async Task ApiBodiesMustSayTheyAreJsonOrMultipart()
    {
        await using var server = await TestServer.StartAsync();
        var http = server.Client;
        // What a cross-site page can send without asking: text/plain, a form post, a typeless blob.
        var plain = await http.PostAsync("/sdapi/v1/txt2img", new StringContent("""{"prompt": "x", "steps": 2}""", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, plain.StatusCode);
        Assert.Contains("expected application/json", await plain.Content.ReadAsStringAsync());
        var form = await http.PostAsync("/api/v1/jobs", new FormUrlEncodedContent([new("prompt", "x")]));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, form.StatusCode);
        var typeless = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"prompt": "x"}"""));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await http.PostAsync("/v1/images/generations", typeless)).StatusCode);
        // A1111 clients post /interrupt without a body.
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/sdapi/v1/interrupt", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2}"""))).StatusCode);
    }

    [Fact]
    public async Task HostHeadersMustNameTheServer()
    {
        await using var server = await TestServer.StartAsync();
        var http = server.Client;
        int port = server.BaseAddress.Port;
        var rebound = await http.SendAsync(WithHost(HttpMethod.Post, "/sdapi/v1/txt2img", $"attacker.example:{port}", Json("""{"prompt": "x", "steps": 2}""")));
        Assert.Equal(HttpStatusCode.BadRequest, rebound.StatusCode);
        Assert.Contains("--allowed-hosts", await rebound.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.SendAsync(WithHost(HttpMethod.Get, "/", "attacker.example"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(WithHost(HttpMethod.Get, "/sdapi/v1/sd-models", $"localhost:{port}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(WithHost(HttpMethod.Get, "/sdapi/v1/sd-models", $"127.0.0.1:{port}"))).StatusCode);

        await using var proxied = await TestServer.StartAsync(o => o with { AllowedHosts = ["sd.example.com", "*.internal.example"] });
        Assert.Equal(HttpStatusCode.OK, (await proxied.Client.SendAsync(WithHost(HttpMethod.Get, "/health", "sd.example.com"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxied.Client.SendAsync(WithHost(HttpMethod.Get, "/health", "gpu1.internal.example"))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await proxied.Client.SendAsync(WithHost(HttpMethod.Get, "/health", "example.com"))).StatusCode);
    }

    [Fact]
    public async Task ImageUrlsComeFromConfigurationNeverFromTheHostHeader()
    {
        await using var server = await TestServer.StartAsync(o => o with { AllowedHosts = ["*"] });
        var forged = await server.Client.SendAsync(WithHost(HttpMethod.Post, "/v1/images/generations", "attacker.example",
            Json("""{"prompt": "x", "size": "64x64"}""")));
        string url = (await forged.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].GetProperty("url").GetString()!;
        Assert.StartsWith($"http://127.0.0.1:{server.BaseAddress.Port}/v1/images/files/", url);

        await using var behindProxy = await TestServer.StartAsync(o => o with { PublicUrl = "https://images.example.com/sd/" });
        var res = await behindProxy.Client.PostAsync("/v1/images/generations", Json("""{"prompt": "x", "size": "64x64"}"""));
        url = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].GetProperty("url").GetString()!;
        Assert.StartsWith("https://images.example.com/sd/v1/images/files/", url);
    }

    [Theory]
    [InlineData("http://somehostname:7860", null, false, "names the host 'somehostname'")]
    [InlineData("http://0.0.0.0:7860", null, false, "without credentials")]
    [InlineData("http://[::]:7860;http://127.0.0.1:7861", null, false, "without credentials")]
    [InlineData("http://192.168.1.20:7860", null, false, "without credentials")]
    [InlineData("ftp://127.0.0.1:21", null, false, "not a listening URL")]
    [InlineData("http://127.0.0.1:7860", "", false, "--api-key is empty")]
    [InlineData("http://127.0.0.1:7860", "   ", false, "--api-key is empty")]
    public void UnsafeOrUnclearStartupOptionsAreRefused(string urls, string? apiKey, bool insecure, string message)
    {
        var options = new ServerOptions { Urls = urls, ApiKey = apiKey, InsecurePublic = insecure };
        var e = Assert.Throws<AsyncDiffusionException>(() => options.Validate());
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void PublicAddressesNeedCredentialsOrAnExplicitInsecureFlag()
    {
        Assert.False(new ServerOptions { Urls = "http://0.0.0.0:7860", ApiKey = "k" }.Validate().LoopbackOnly);
        new ServerOptions { Urls = "http://0.0.0.0:7860", ApiAuth = "u:p" }.Validate();
        new ServerOptions { Urls = "http://0.0.0.0:7860", InsecurePublic = true }.Validate();
        Assert.True(new ServerOptions { Urls = "http://localhost:7860;http://[::1]:7861" }.Validate().LoopbackOnly);
    }

    [Theory]
    [InlineData("--max-steps", "-5", "--max-steps is -5")]
    [InlineData("--max-queue", "0", "--max-queue is 0")]
    [InlineData("--max-images", "0", "--max-images is 0")]
    [InlineData("--max-size", "-1", "--max-size is -1")]
    [InlineData("--urls", "http://somehostname:7860", "names the host")]
    [InlineData("--api-auth", "nopass", "--api-auth must be user:pass")]
    public async Task ServeRefusesBadLimitsAtStartWithOneLine(string option, string value, string message)
    {
        // A server that wrongly starts would run until stopped: give it a minute to refuse.
        var run = Task.Run(() => Cli.CliRun.Run("serve", option, value));
        Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60))) == run, "serve started instead of refusing");
        var (code, _, err) = await run;
        Assert.Contains(message, Cli.CliRun.OneErrorLine(code, err));
    }

    [Fact]
    public void ServeOnAPortInUseIsOneLine()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var (code, _, err) = Cli.CliRun.Run("serve", "--model", Models.TinyModels.Folder("optimum"), "--urls", $"http://127.0.0.1:{port}");
        Assert.Contains($"cannot listen on http://127.0.0.1:{port}", Cli.CliRun.OneErrorLine(code, err));
    }

    [Fact]
    public async Task OneLogLinePerRequestWithoutSecrets()
    {
        var log = new CapturedLog();
        await using var server = await TestServer.StartAsync(o => o with { ApiKey = "sekrit-key" }, log.AddTo);
        var http = server.Client;
        log.Entries.Clear();
        await http.GetAsync("/api/v1/jobs/nope/events?access_token=sekrit-key");
        var bad = new HttpRequestMessage(HttpMethod.Post, "/sdapi/v1/txt2img") { Content = Json("""{"prompt": "x", "steps": -5}""") };
        bad.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sekrit-key");
        await http.SendAsync(bad);
        await http.GetAsync("/health");
        await Task.Delay(200);

        var entries = log.Entries.ToArray();
        Assert.DoesNotContain(entries, e => e.Message.Contains("sekrit") || (e.Error?.ToString().Contains("sekrit") ?? false));
        Assert.DoesNotContain(entries, e => e.Category.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal) && e.Level < LogLevel.Warning);
        Assert.Single(entries, e => e.Message.StartsWith("GET /api/v1/jobs/nope/events → 404", StringComparison.Ordinal));
        Assert.Single(entries, e => e.Message.StartsWith("POST /sdapi/v1/txt2img → 400", StringComparison.Ordinal));
        Assert.Single(entries, e => e.Message.StartsWith("GET /health → 200", StringComparison.Ordinal));
        Assert.Equal(3, entries.Length);
    }

    [Fact]
    public async Task EveryConfiguredCredentialOpensEveryApiRouteAndEmptyOnesNothing()
    {
        await using var server = await TestServer.StartAsync(o => o with { ApiAuth = "user:pass" });
        var http = server.Client;
        async Task<HttpStatusCode> Get(string path, string scheme, string credential)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue(scheme, credential);
            return (await http.SendAsync(request)).StatusCode;
        }
        string basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass"));
        // --api-auth alone: OpenAI and native clients send user:pass as their key; A1111 clients use Basic.
        Assert.Equal(HttpStatusCode.NotFound, await Get("/api/v1/jobs/x", "Bearer", "user:pass"));
        Assert.Equal(HttpStatusCode.NotFound, await Get("/api/v1/jobs/x", "Basic", basic));
        Assert.Equal(HttpStatusCode.OK, await Get("/sdapi/v1/sd-models", "Basic", basic));
        Assert.Equal(HttpStatusCode.OK, await Get("/sdapi/v1/sd-models", "Bearer", "user:pass"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/api/v1/jobs/x", "Bearer", "pass"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/sdapi/v1/sd-models", "Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(":"))));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/sdapi/v1/sd-models", "Basic", "not base64!"));

        await using var keyed = await TestServer.StartAsync(o => o with { ApiKey = "k" });
        var request = new HttpRequestMessage(HttpMethod.Get, "/sdapi/v1/sd-models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(":")));
        Assert.Equal(HttpStatusCode.Unauthorized, (await keyed.Client.SendAsync(request)).StatusCode);
        Assert.Throws<AsyncDiffusionException>(() => new ServerOptions { ApiKey = "" }.Validate());
    }

    [Fact]
    public async Task InterruptCancelsOnlyTheCallersJobs()
    {
        await using var server = await TestServer.StartAsync();
        // Two A1111 clients on one machine, told apart by their credentials.
        using var alice = new HttpClient { BaseAddress = server.BaseAddress };
        using var bob = new HttpClient { BaseAddress = server.BaseAddress };
        alice.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "alice");
        bob.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "bob");

        var alicesRun = alice.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "alice", "steps": 40, "width": 128, "height": 128}"""));
        var bobsRun = bob.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "bob", "steps": 40, "width": 128, "height": 128}"""));
        for (int i = 0; i < 200; i++)
        {
            using var p = JsonDocument.Parse(await bob.GetStringAsync("/sdapi/v1/progress"));
            if (p.RootElement.GetProperty("state").GetProperty("sampling_step").GetInt32() > 0) break;
            await Task.Delay(20);
        }
        Assert.Equal(HttpStatusCode.OK, (await bob.PostAsync("/sdapi/v1/interrupt", null)).StatusCode);

        using var bobs = JsonDocument.Parse(await (await bobsRun).Content.ReadAsStringAsync());
        Assert.Equal(0, bobs.RootElement.GetProperty("images").GetArrayLength()); // interrupted: no images
        using var alices = JsonDocument.Parse(await (await alicesRun).Content.ReadAsStringAsync());
        Assert.Equal(1, alices.RootElement.GetProperty("images").GetArrayLength()); // untouched by bob's interrupt
    }
}
