using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// The web page driven in headless Chromium through chromedriver's WebDriver protocol: type a
/// prompt, submit, see progress and the image appear. Needs Debian's chromium and
/// chromium-driver (.ci/run installs them); skipped where they are absent.
/// </summary>
public sealed class WebPageTests
{
    private const string Chromium = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";
    private const string ElementKey = "element-6066-11e4-a52e-4f735466cecf";

    [SkippableFact]
    public async Task TypeAPromptSubmitAndSeeTheImage()
    {
        Skip.IfNot(File.Exists(Chromium) && File.Exists(Driver), "Debian's chromium and chromium-driver are not installed (.ci/run installs them).");
        await using var server = await TestServer.StartAsync();
        int port = FreePort();
        using var driver = Process.Start(new ProcessStartInfo(Driver, $"--port={port}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        using var userData = new TempFolder();
        try
        {
            using var wd = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntil(async () => (await Try(() => wd.GetAsync("/status")))?.IsSuccessStatusCode == true, TimeSpan.FromSeconds(20));
            var session = await Post(wd, "/session", new JsonObject
            {
                ["capabilities"] = new JsonObject
                {
                    ["alwaysMatch"] = new JsonObject
                    {
                        ["browserName"] = "chrome",
                        ["goog:chromeOptions"] = new JsonObject
                        {
                            ["binary"] = Chromium,
                            ["args"] = new JsonArray("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync", $"--user-data-dir={userData.Path}"),
                        },
                    },
                },
            });
            string id = session["sessionId"]!.GetValue<string>();
            string s = $"/session/{id}";
            await Post(wd, $"{s}/url", new JsonObject { ["url"] = server.BaseAddress.ToString() });

            async Task<string> Find(string css)
            {
                var found = await Post(wd, $"{s}/element", new JsonObject { ["using"] = "css selector", ["value"] = css });
                return found?[ElementKey]?.GetValue<string>() ?? throw new InvalidOperationException($"WebDriver found no element key for {css}: {found?.ToJsonString()}");
            }
            async Task Type(string css, string text)
            {
                string e = await Find(css);
                await Post(wd, $"{s}/element/{e}/clear", new JsonObject());
                await Post(wd, $"{s}/element/{e}/value", new JsonObject { ["text"] = text });
            }
            async Task<JsonNode?> Script(string js) => await Post(wd, $"{s}/execute/sync", new JsonObject { ["script"] = js, ["args"] = new JsonArray() });

            // The scheduler list is filled from the API once the page has loaded.
            await WaitUntil(async () => (await Script("return document.querySelectorAll('#scheduler option').length"))!.GetValue<int>() > 1, TimeSpan.FromSeconds(20));
            await Type("#prompt", "a red lighthouse on a cliff");
            await Type("#steps", "12");
            await Post(wd, $"{s}/element/{await Find("#generate")}/click", new JsonObject());

            bool sawStep = false;
            await WaitUntil(async () =>
            {
                string status = (await Script("return document.getElementById('status').textContent"))!.GetValue<string>();
                sawStep |= status.StartsWith("Step ", StringComparison.Ordinal);
                return (await Script("return document.querySelectorAll('#gallery figure img').length"))!.GetValue<int>() > 0;
            }, TimeSpan.FromSeconds(60));
            string caption = (await Script("return document.querySelector('#gallery figcaption').textContent"))!.GetValue<string>();
            Assert.StartsWith("a red lighthouse on a cliff\nSteps: 12", caption);
            Assert.Equal("Done", (await Script("return document.getElementById('status').textContent"))!.GetValue<string>());
            Assert.True(sawStep || (await Script("return document.getElementById('progress').value"))!.GetValue<double>() == 1);
            double width = (await Script("return document.querySelector('#gallery figure img').naturalWidth"))!.GetValue<double>();
            Assert.Equal(64, width);
            await wd.DeleteAsync(s);
        }
        finally
        {
            driver.Kill(entireProcessTree: true);
        }
    }

    private static async Task<JsonNode> Post(HttpClient wd, string path, JsonObject body)
    {
        // chromedriver wants a Content-Length, not a chunked body.
        var res = await wd.PostAsync(path, new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        var json = JsonNode.Parse(await res.Content.ReadAsStringAsync())!;
        if (!res.IsSuccessStatusCode) throw new InvalidOperationException($"WebDriver {path}: {json}");
        return json["value"]!;
    }

    private static async Task<T?> Try<T>(Func<Task<T>> f) where T : class
    {
        try { return await f(); }
        catch (HttpRequestException) { return null; }
    }

    private static async Task WaitUntil(Func<Task<bool>> condition, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"Condition not met within {limit.TotalSeconds} s.");
            await Task.Delay(100);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
