using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// Headless Chromium driven through chromedriver's W3C WebDriver protocol over HTTP (no client
/// package), with a fresh profile per instance and an exactly sized viewport. Needs Debian's
/// chromium and chromium-driver (.ci/run installs them).
/// </summary>
public sealed class Browser : IAsyncDisposable
{
    private const string Chromium = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";
    private const string ElementKey = "element-6066-11e4-a52e-4f735466cecf";

    public static bool Installed => File.Exists(Chromium) && File.Exists(Driver);
    public const string NotInstalled = "Debian's chromium and chromium-driver are not installed (.ci/run installs them).";

    private readonly Process _driver;
    private readonly HttpClient _http;
    private readonly TempFolder _profile;
    private string _session = "";

    public int Width { get; private set; }
    public int Height { get; private set; }

    private Browser(Process driver, HttpClient http, TempFolder profile)
    {
        (_driver, _http, _profile) = (driver, http, profile);
    }

    /// <summary>A browser with a fresh profile; <see cref="SetViewport"/> sizes its page.</summary>
    public static async Task<Browser> OpenAsync(int width = 1280, int height = 900)
    {
        int port = FreePort();
        var driver = Process.Start(new ProcessStartInfo(Driver, $"--port={port}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        var browser = new Browser(driver, http, new TempFolder());
        try
        {
            await WaitUntil(async () =>
            {
                try { return (await http.GetAsync("/status")).IsSuccessStatusCode; }
                catch (HttpRequestException) { return false; }
            }, TimeSpan.FromSeconds(20), "chromedriver to start");
            var session = await browser.Command("/session", new JsonObject
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
                                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                                $"--window-size={width},{height}", $"--user-data-dir={browser._profile.Path}"),
                        },
                    },
                },
            });
            browser._session = "/session/" + session!["sessionId"]!.GetValue<string>();
            await browser.SetViewport(width, height);
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    /// <summary>Makes the viewport exactly <paramref name="width"/> × <paramref name="height"/> CSS pixels, as a phone's when narrower than 600.</summary>
    public async Task SetViewport(int width, int height)
    {
        // The window size is not the viewport: set the viewport itself.
        await Cdp("Emulation.setDeviceMetricsOverride", new JsonObject
        {
            ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = width < 600,
        });
        (Width, Height) = (width, height);
    }

    /// <summary>Forgets everything the site at <paramref name="origin"/> stored (IndexedDB, localStorage, cache).</summary>
    public async Task ClearStorage(Uri origin)
    {
        await Navigate(new Uri("about:blank"));
        await Cdp("Storage.clearDataForOrigin", new JsonObject { ["origin"] = origin.GetLeftPart(UriPartial.Authority), ["storageTypes"] = "all" });
    }

    public Task Navigate(Uri url) => Command($"{_session}/url", new JsonObject { ["url"] = url.ToString() });

    public Task Reload() => Command($"{_session}/refresh", new JsonObject());

    public async Task<string> Find(string css)
    {
        var found = await Command($"{_session}/element", new JsonObject { ["using"] = "css selector", ["value"] = css });
        return found?[ElementKey]?.GetValue<string>() ?? throw new InvalidOperationException($"WebDriver found no element for {css}: {found?.ToJsonString()}");
    }

    public async Task Click(string css) => await Command($"{_session}/element/{await Find(css)}/click", new JsonObject());

    /// <summary>Replaces a field's text by typing, as a user would.</summary>
    public async Task Type(string css, string text)
    {
        string e = await Find(css);
        await Command($"{_session}/element/{e}/clear", new JsonObject());
        await Command($"{_session}/element/{e}/value", new JsonObject { ["text"] = text });
    }

    /// <summary>Chooses a file in an &lt;input type=file&gt;.</summary>
    public async Task ChooseFile(string css, string path) =>
        await Command($"{_session}/element/{await Find(css)}/value", new JsonObject { ["text"] = path });

    public async Task<JsonNode?> Script(string js) => await Command($"{_session}/execute/sync", new JsonObject { ["script"] = js, ["args"] = new JsonArray() });

    public async Task<T> Eval<T>(string expression)
    {
        var value = await Script("return " + expression);
        return value is null ? throw new InvalidOperationException($"{expression} is null") : value.GetValue<T>();
    }

    /// <summary>Runs WebDriver input actions (real, trusted pointer and key events).</summary>
    public Task Actions(params JsonObject[] sources) => Command($"{_session}/actions", new JsonObject { ["actions"] = new JsonArray(sources) });

    /// <summary>A pointer path over an element: offsets from its centre in CSS pixels, pressed from the first point to the last.</summary>
    public async Task Drag(string css, params (int X, int Y)[] path)
    {
        string element = await Find(css);
        // Input actions do not scroll: bring the element into view first.
        await Script($"document.querySelector({System.Text.Json.JsonSerializer.Serialize(css)}).scrollIntoView({{ block: 'center' }})");
        JsonObject Move((int X, int Y) p, int ms) => new()
        {
            ["type"] = "pointerMove", ["duration"] = ms, ["x"] = p.X, ["y"] = p.Y, ["origin"] = new JsonObject { [ElementKey] = element },
        };
        var steps = new JsonArray { Move(path[0], 0), new JsonObject { ["type"] = "pointerDown", ["button"] = 0 } };
        foreach (var p in path.Skip(1)) steps.Add(Move(p, 60));
        steps.Add(new JsonObject { ["type"] = "pointerUp", ["button"] = 0 });
        await Actions(new JsonObject { ["type"] = "pointer", ["id"] = "mouse", ["parameters"] = new JsonObject { ["pointerType"] = "mouse" }, ["actions"] = steps });
        await Command($"{_session}/actions", new JsonObject(), HttpMethod.Delete);
    }

    /// <summary>Presses a chord (WebDriver key codes, e.g. "\uE009" Control), then releases it.</summary>
    public async Task Press(params string[] keys)
    {
        var steps = new JsonArray();
        foreach (var k in keys) steps.Add(new JsonObject { ["type"] = "keyDown", ["value"] = k });
        foreach (var k in keys.Reverse()) steps.Add(new JsonObject { ["type"] = "keyUp", ["value"] = k });
        await Actions(new JsonObject { ["type"] = "key", ["id"] = "keyboard", ["actions"] = steps });
    }

    /// <summary>Waits for a script expression to be true.</summary>
    public Task WaitFor(string expression, string what, double seconds = 30) =>
        WaitUntil(async () => await Script($"return !!({expression})") is JsonValue v && v.GetValue<bool>(), TimeSpan.FromSeconds(seconds), what);

    /// <summary>Makes the page see the system's colour scheme as "light" or "dark".</summary>
    public Task EmulateColorScheme(string scheme) => Cdp("Emulation.setEmulatedMedia", new JsonObject
    {
        ["features"] = new JsonArray(new JsonObject { ["name"] = "prefers-color-scheme", ["value"] = scheme }),
    });

    /// <summary>Saves the whole page (not only the viewport) as a PNG.</summary>
    public async Task SaveScreenshot(string path)
    {
        double pageHeight = await Eval<double>("Math.max(document.documentElement.scrollHeight, innerHeight)");
        var shot = await Cdp("Page.captureScreenshot", new JsonObject
        {
            ["format"] = "png", ["captureBeyondViewport"] = true,
            ["clip"] = new JsonObject { ["x"] = 0, ["y"] = 0, ["width"] = Width, ["height"] = pageHeight, ["scale"] = 1 },
        });
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllBytesAsync(path, Convert.FromBase64String(shot["data"]!.GetValue<string>()));
    }

    private async Task<JsonNode> Cdp(string command, JsonObject parameters) =>
        await Command($"{_session}/goog/cdp/execute", new JsonObject { ["cmd"] = command, ["params"] = parameters }) ?? new JsonObject();

    private async Task<JsonNode?> Command(string path, JsonObject body, HttpMethod? method = null)
    {
        // chromedriver wants a Content-Length, not a chunked body.
        using var message = new HttpRequestMessage(method ?? HttpMethod.Post, path)
        {
            Content = method == HttpMethod.Delete ? null : new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        var res = await _http.SendAsync(message);
        var json = JsonNode.Parse(await res.Content.ReadAsStringAsync())!;
        if (!res.IsSuccessStatusCode) throw new InvalidOperationException($"WebDriver {path}: {json}");
        return json["value"];
    }

    public static async Task WaitUntil(Func<Task<bool>> condition, TimeSpan limit, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"Waited {limit.TotalSeconds} s for {what}.");
            await Task.Delay(50);
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

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_session.Length > 0) await _http.DeleteAsync(_session);
        }
        catch (HttpRequestException) { }
        catch (TaskCanceledException) { }
        finally
        {
            _driver.Kill(entireProcessTree: true);
            _driver.Dispose();
            _http.Dispose();
            _profile.Dispose();
        }
    }
}
