using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// The web page in headless Chromium at a desktop (1280×900) and a phone (390×844) viewport,
/// against a real server with the tiny model: layout, generation with progress and preview,
/// the gallery, img2img and inpainting, keyboard, errors. Screenshots go to
/// TestResults/screenshots/ at the repository root. Skipped where Chromium is not installed.
/// </summary>
public sealed class WebPageTests(WebPageTests.PageFixture fixture) : IClassFixture<WebPageTests.PageFixture>
{
    /// <summary>One server and one browser for the class (starting Chromium is the slow part); each test starts from empty storage.</summary>
    public sealed class PageFixture : IAsyncLifetime
    {
        private Browser? _browser;
        public TestServer Server { get; private set; } = null!;
        public async Task<Browser> SharedBrowser() => _browser ??= await Browser.OpenAsync();
        public async Task InitializeAsync() => Server = await TestServer.StartAsync();
        public async Task DisposeAsync()
        {
            if (_browser is not null) await _browser.DisposeAsync();
            await Server.DisposeAsync();
        }
    }

    public static string ScreenshotFolder => Path.Combine(SharedData.RepositoryRoot, "TestResults", "screenshots");

    // The tiny model makes a 64×64 image in milliseconds; at 128×128 with 30 steps or more a
    // job runs long enough for its progress to be seen.
    private const int SlowSize = 128;

    [SkippableTheory]
    [InlineData(1280, 900, "desktop")]
    [InlineData(390, 844, "phone")]
    public async Task GeneratingShowsProgressThenTheImageWhichTheGalleryKeepsAfterAReload(int width, int height, string name)
    {
        var page = await OpenPage(width, height);
        await AssertNothingOverflows(page, "the page before any image");
        Assert.False(await page.Eval<bool>("document.getElementById('placeholder').hidden"));

        await page.Type("#prompt", "a red lighthouse on a cliff");
        await page.Type("#width", $"{SlowSize}");
        await page.Type("#height", $"{SlowSize}");
        await page.Type("#steps", "40");
        await page.Type("#seed", "1234");
        await WatchProgress(page);
        await page.Click("#generate");
        await page.WaitFor("document.querySelectorAll('#gallery .card').length === 1", "the image in the gallery");

        var seen = (await page.Script("return window.seen"))!;
        var progress = seen["progress"]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
        Assert.Contains(progress, p => p is > 0 and < 100);
        Assert.Equal(100, progress[^1]);
        Assert.Contains(seen["status"]!.AsArray(), s => s!.GetValue<string>().StartsWith("Step ", StringComparison.Ordinal));
        Assert.StartsWith("Done: 1 image in ", await page.Eval<string>("document.getElementById('status').textContent"));
        Assert.Equal(SlowSize, await page.Eval<int>("document.querySelector('#result-images img').naturalWidth"));
        string caption = await page.Eval<string>("document.querySelector('#gallery .infotext').textContent");
        Assert.StartsWith("a red lighthouse on a cliff\nSteps: 40", caption);
        Assert.Contains("Seed: 1234", caption);
        await AssertNothingOverflows(page, "the page with an image");
        await page.SaveScreenshot(Path.Combine(ScreenshotFolder, $"{name}-{width}x{height}.png"));

        await page.Reload();
        await page.WaitFor("document.querySelectorAll('#gallery .card img').length === 1 && document.querySelector('#gallery .card img').naturalWidth > 0", "the gallery after a reload");
        Assert.Equal(caption, await page.Eval<string>("document.querySelector('#gallery .infotext').textContent"));
        Assert.Equal(SlowSize, await page.Eval<int>("document.querySelector('#gallery .card img').naturalWidth"));
        Assert.EndsWith("-1234.png", await page.Eval<string>("document.querySelector('#gallery .card a[download]').download"));
    }

    [SkippableTheory]
    [InlineData(1280, 900, "desktop")]
    [InlineData(390, 844, "phone")]
    public async Task DrawingOnTheInpaintCanvasSendsAWhiteOnBlackMaskTheSizeOfTheInitImage(int width, int height, string name)
    {
        using var folder = new TempFolder();
        string file = Path.Combine(folder.Path, "photo.png");
        await File.WriteAllBytesAsync(file, ImageCodec.Encode(Gradient(160, 96), ImageFormat.Png));
        var page = await OpenPage(width, height);
        await page.Click("label[for=mode-inpaint]");
        await page.ChooseFile("#init-file", file);
        await page.WaitFor("!document.getElementById('canvas-wrap').hidden && document.getElementById('mask-canvas').width === 160", "the init image under the mask canvas");
        Assert.Equal(160, await page.Eval<int>("document.getElementById('init-image').naturalWidth"));
        await AssertNothingOverflows(page, "inpaint mode with an image");

        // A wavy stroke through the middle (CSS pixels from the canvas's centre).
        (int, int)[] stroke = [(-60, -20), (-20, 10), (20, -10), (60, 15)];
        await page.Drag("#mask-canvas", stroke);
        int painted = await page.Eval<int>(PaintedPixels);
        Assert.InRange(painted, 1, 160 * 96 - 1);
        await page.SaveScreenshot(Path.Combine(ScreenshotFolder, $"inpaint-mask-{name}-{width}x{height}.png"));

        await RecordRequests(page);
        await page.Click("#generate");
        await page.WaitFor("document.querySelectorAll('#gallery .card').length === 1", "the inpainted image");
        var request = await JobRequest(page);
        var init = ImageCodec.Decode(Convert.FromBase64String(request["init_image"]!.GetValue<string>()), "init_image");
        var mask = ImageCodec.Decode(Convert.FromBase64String(request["mask"]!.GetValue<string>()), "mask");
        Assert.Equal((160, 96), (init.Width, init.Height));
        Assert.Equal((160, 96), (mask.Width, mask.Height));
        Assert.Equal(0.75, request["strength"]!.GetValue<double>());
        Assert.Equal(4, request["mask_blur"]!.GetValue<int>());
        Assert.Equal((255, 255, 255), Pixel(mask, 80, 48));                         // under the stroke: repaint
        Assert.Equal((0, 0, 0), Pixel(mask, 2, 2));                                   // far from it: keep
        Assert.Equal((0, 0, 0), Pixel(mask, 157, 93));
        int white = Enumerable.Range(0, 160 * 96).Count(i => mask.Pixels[i * 3] > 127);
        Assert.InRange(white, painted / 2, painted * 2);                             // the mask is what was drawn
        Assert.All(Enumerable.Range(0, 160 * 96), i => Assert.True(mask.Pixels[i * 3] == mask.Pixels[i * 3 + 1] && mask.Pixels[i * 3 + 1] == mask.Pixels[i * 3 + 2]));

        // Eraser, invert and clear.
        await page.Click("label[for=tool-eraser]");
        await page.Drag("#mask-canvas", stroke);
        int left = await page.Eval<int>(PaintedPixels);
        Assert.True(left < painted / 2, $"the eraser removed most of the stroke: {left} of {painted} pixels left");
        await page.Click("#mask-invert");
        Assert.True(await page.Eval<int>(PaintedPixels) > 160 * 96 / 2, "invert paints what was not painted");
        await page.Click("#mask-clear");
        Assert.Equal(0, await page.Eval<int>(PaintedPixels));
        await page.Click("#generate");
        await page.WaitFor("!document.getElementById('message').hidden", "the empty-mask message");
        Assert.StartsWith("Draw a mask", await page.Eval<string>("document.getElementById('message').textContent"));
    }

    [SkippableFact]
    public async Task SendToImg2ImgFillsTheImg2ImgFormFromAGalleryImageAndGeneratesFromIt()
    {
        var page = await OpenPage(1280, 900);
        await page.Type("#prompt", "a blue boat");
        await page.Type("#steps", "6");
        await page.Type("#seed", "777");
        await page.Click("#sampler option[value='Euler']");
        await page.Click("#schedule option[value='karras']");
        await RecordRequests(page);
        await page.Click("#generate");
        await page.WaitFor("document.querySelectorAll('#gallery .card').length === 1", "the first image");
        Assert.Equal("Euler Karras", (await JobRequest(page))["scheduler"]!.GetValue<string>());
        Assert.Contains("Sampler: Euler Karras", await page.Eval<string>("document.querySelector('#gallery .infotext').textContent"));

        await page.Type("#prompt", "something else");
        await page.Click("#seed-random");
        Assert.Equal("-1", await page.Eval<string>("document.getElementById('seed').value"));
        await page.Click("#seed-reuse");
        Assert.Equal("777", await page.Eval<string>("document.getElementById('seed').value"));
        await page.Type("#steps", "9");

        await page.Click("#gallery .card [data-act=img2img]");
        await page.WaitFor("document.getElementById('init-image').naturalWidth > 0", "the gallery image as the init image");
        Assert.True(await page.Eval<bool>("document.getElementById('mode-img2img').checked && document.getElementById('form').dataset.mode === 'img2img'"));
        Assert.Equal(64, await page.Eval<int>("document.getElementById('init-image').naturalWidth"));
        Assert.Equal("a blue boat", await page.Eval<string>("document.getElementById('prompt').value"));
        Assert.Equal("6", await page.Eval<string>("document.getElementById('steps').value"));
        Assert.Equal("777", await page.Eval<string>("document.getElementById('seed').value"));
        Assert.Equal("64", await page.Eval<string>("document.getElementById('width').value"));
        await AssertNothingOverflows(page, "img2img mode with an image");

        await RecordRequests(page);
        await page.Type("#steps", "10");
        await page.Click("#generate");
        await page.WaitFor("document.querySelectorAll('#gallery .card').length === 2", "the img2img image");
        var request = await JobRequest(page);
        Assert.Equal(64, ImageCodec.Decode(Convert.FromBase64String(request["init_image"]!.GetValue<string>()), "init_image").Width);
        Assert.Null(request["mask"]);
        Assert.Contains("Denoising strength: 0.75", await page.Eval<string>("document.querySelector('#gallery .infotext').textContent"));

        // "Use settings" on the older image brings its prompt and seed back.
        await page.Click("#gallery .card:nth-child(2) [data-act=use]");
        Assert.Equal("a blue boat", await page.Eval<string>("document.getElementById('prompt').value"));
        Assert.Equal("6", await page.Eval<string>("document.getElementById('steps').value"));
    }

    [SkippableFact]
    public async Task CtrlEnterStartsAJobWhoseLivePreviewShowsUntilEscapeCancelsIt()
    {
        var page = await OpenPage(1280, 900);
        // Long enough (400 steps of 256×256 images) to be cancelled on any machine.
        await page.Type("#width", "256");
        await page.Type("#height", "256");
        await page.Type("#steps", "100");
        await page.Type("#count", "4");
        await RecordRequests(page);
        await page.Click("#prompt");
        await page.Press("\uE009", "\uE007"); // Control + Enter, typed in the prompt
        await page.WaitFor("document.getElementById('status').textContent.startsWith('Step ')", "the job to run");
        Assert.Single((await page.Script("return window.posts"))!.AsArray());
        Assert.False(await page.Eval<bool>("document.getElementById('prompt').value.includes('\\n')"));
        await page.WaitFor("!document.getElementById('live-preview').hidden && document.getElementById('live-preview').naturalWidth === 256", "the live preview");
        Assert.True(await page.Eval<bool>("document.getElementById('placeholder').hidden"));
        Assert.True(await page.Eval<bool>("document.getElementById('result-images').hidden"));

        await page.Press("\uE00C"); // Escape
        await page.WaitFor("document.getElementById('status').textContent === 'Cancelled.'", "the job to be cancelled");
        Assert.Equal(0, await page.Eval<int>("document.querySelectorAll('#gallery .card').length"));
        Assert.False(await page.Eval<bool>("document.getElementById('generate').disabled"));
        var id = (await JobRequestResponse(page))["id"]!.GetValue<string>();
        using var job = JsonDocument.Parse(await fixture.Server.Client.GetStringAsync($"/api/v1/jobs/{id}"));
        Assert.Equal("cancelled", job.RootElement.GetProperty("state").GetString());
    }

    [SkippableFact]
    public async Task AnInvalidSizeShowsTheServersReasonNextToTheForm()
    {
        var page = await OpenPage(390, 844);
        await page.Type("#width", "1000");
        await page.Click("#generate");
        await page.WaitFor("!document.getElementById('message').hidden", "the error message");
        string message = await page.Eval<string>("document.getElementById('message').textContent");
        Assert.StartsWith("The server refused these settings: width is 1000; expected", message);
        Assert.True(await page.Eval<bool>("document.getElementById('message').closest('form') !== null"));
        Assert.Equal("true", await page.Eval<string>("document.getElementById('width').getAttribute('aria-invalid')"));
        Assert.Equal("alert", await page.Eval<string>("document.getElementById('message').getAttribute('role')"));
        await AssertNothingOverflows(page, "the page showing an error");
    }

    [SkippableFact]
    public async Task AFullQueueIsRetriedAfterRetryAfterWithAVisibleCountdown()
    {
        await using var server = await TestServer.StartAsync(o => o with { Engine = o.Engine with { MaxJobs = 1 } });
        var page = await OpenPage(1280, 900, server);
        // One long job fills the queue.
        var blocker = await server.Client.PostAsJsonAsync("/api/v1/jobs", new { prompt = "blocker", width = 256, height = 256, steps = 100, n = 4 });
        string blockerId = (await blocker.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        await page.Type("#steps", "5");
        await page.Click("#generate");
        await page.WaitFor("document.getElementById('message').textContent.includes('Retrying in')", "the retry countdown");
        string notice = await page.Eval<string>("document.getElementById('message').textContent");
        Assert.Matches(@"^The server is busy: its queue is full\. Retrying in \d+ s", notice);
        Assert.Contains("notice", await page.Eval<string>("document.getElementById('message').className"));

        await server.Client.DeleteAsync($"/api/v1/jobs/{blockerId}");
        await page.WaitFor("document.querySelectorAll('#gallery .card').length === 1", "the image after the retry");
        Assert.True(await page.Eval<bool>("document.getElementById('message').hidden"));
    }

    [SkippableFact]
    public async Task WithAnApiKeyThePageAsksForItAndThenGenerates()
    {
        await using var server = await TestServer.StartAsync(o => o with { ApiKey = "sesame" });
        var page = await OpenPage(1280, 900, server, listsLoad: false);
        await page.WaitFor("!document.getElementById('message').hidden", "the request for a key");
        Assert.StartsWith("The server needs an API key", await page.Eval<string>("document.getElementById('message').textContent"));
        Assert.True(await page.Eval<bool>("document.getElementById('advanced').open && document.activeElement.id === 'key'"));

        await page.Type("#key", "sesame\uE004"); // Tab commits the field
        await page.WaitFor("document.querySelectorAll('#sampler option').length > 1", "the lists once the key is given");
        Assert.True(await page.Eval<bool>("document.getElementById('message').hidden"));
        await page.Type("#steps", "30");
        await page.Type("#width", $"{SlowSize}");
        await page.Type("#height", $"{SlowSize}");
        await WatchProgress(page);
        await page.Click("#generate");
        await page.WaitFor("document.querySelectorAll('#gallery .card img').length === 1", "the image");
        Assert.Contains((await page.Script("return window.seen.status"))!.AsArray(), s => s!.GetValue<string>().StartsWith("Step ", StringComparison.Ordinal));
        Assert.Equal(SlowSize, await page.Eval<int>("document.querySelector('#result-images img').naturalWidth"));
    }

    [SkippableFact]
    public async Task EveryControlIsLabelledListsWhatTheServerOffersAndFollowsTheSystemColourScheme()
    {
        var page = await OpenPage(1280, 900);
        var samplers = await fixture.Server.Client.GetFromJsonAsync<JsonElement>("/sdapi/v1/samplers");
        var schedules = await fixture.Server.Client.GetFromJsonAsync<JsonElement>("/sdapi/v1/schedulers");
        Assert.Equal(samplers.EnumerateArray().Select(s => s.GetProperty("name").GetString()).Prepend(""),
            (await page.Script("return [...document.querySelectorAll('#sampler option')].map(o => o.value)"))!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Equal(schedules.EnumerateArray().Select(s => s.GetProperty("name").GetString()),
            (await page.Script("return [...document.querySelectorAll('#schedule option')].map(o => o.value)"))!.AsArray().Select(v => v!.GetValue<string>()));

        var unlabelled = (await page.Script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
              .map(e => e.id || e.outerHTML)
            """))!.AsArray();
        Assert.Empty(unlabelled);

        // A focused field shows an outline.
        Assert.NotEqual("none", await page.Eval<string>("(document.getElementById('steps').focus(), getComputedStyle(document.getElementById('steps')).outlineStyle)"));

        await page.EmulateColorScheme("light");
        string light = await page.Eval<string>("getComputedStyle(document.body).backgroundColor");
        await page.EmulateColorScheme("dark");
        string dark = await page.Eval<string>("getComputedStyle(document.body).backgroundColor");
        Assert.NotEqual(light, dark);
        await page.SaveScreenshot(Path.Combine(ScreenshotFolder, "dark-1280x900.png"));
    }

    /// <summary>The page, freshly loaded with empty browser storage, in a <paramref name="width"/> × <paramref name="height"/> viewport.</summary>
    private async Task<Browser> OpenPage(int width, int height, TestServer? server = null, bool listsLoad = true)
    {
        Skip.IfNot(Browser.Installed, Browser.NotInstalled);
        var page = await fixture.SharedBrowser();
        var address = (server ?? fixture.Server).BaseAddress;
        await page.ClearStorage(address);
        await page.SetViewport(width, height);
        await page.EmulateColorScheme("light");
        await page.Navigate(address);
        if (listsLoad)
            await page.WaitFor("document.querySelectorAll('#sampler option').length > 1 && document.querySelectorAll('#schedule option').length > 1", "the lists from the server");
        Assert.Equal(width, await page.Eval<int>("innerWidth"));
        return page;
    }

    /// <summary>No horizontal scrolling, no visible control or picture sticking out of its panel, no result bigger than the result area.</summary>
    private static async Task AssertNothingOverflows(Browser page, string when)
    {
        var problems = (await page.Script("""
            const problems = [];
            const root = document.documentElement;
            if (root.scrollWidth > innerWidth) problems.push(`the page is ${root.scrollWidth} px wide in a ${innerWidth} px viewport`);
            for (const panel of document.querySelectorAll('.panel, header')) {
              const p = panel.getBoundingClientRect();
              for (const e of panel.querySelectorAll('input, select, textarea, button, a, img, canvas, label, output, pre, fieldset, .card')) {
                const r = e.getBoundingClientRect();
                if (r.width <= 1 && r.height <= 1) continue; // hidden, or visually hidden for screen readers
                if (r.left < p.left - 0.5 || r.right > p.right + 0.5)
                  problems.push(`${e.id ? '#' + e.id : e.tagName.toLowerCase() + '.' + e.className} spans x ${r.left.toFixed(1)}–${r.right.toFixed(1)}, outside its panel's ${p.left.toFixed(1)}–${p.right.toFixed(1)}`);
              }
            }
            // Pictures in the result area stay inside it, vertically too.
            const stage = document.getElementById('stage').getBoundingClientRect();
            for (const e of document.querySelectorAll('#stage img')) {
              const r = e.getBoundingClientRect();
              if (r.width > 0 && (r.top < stage.top - 0.5 || r.bottom > stage.bottom + 0.5 || r.left < stage.left - 0.5 || r.right > stage.right + 0.5))
                problems.push(`a picture spans ${r.width.toFixed(0)}×${r.height.toFixed(0)} px in the ${stage.width.toFixed(0)}×${stage.height.toFixed(0)} px result area`);
            }
            return problems;
            """))!.AsArray().Select(p => p!.GetValue<string>()).ToArray();
        Assert.True(problems.Length == 0, $"At {page.Width}×{page.Height}, {when}: {string.Join("; ", problems)}");
    }

    /// <summary>Records every progress value and status text the page shows, from now on, in window.seen.</summary>
    private static Task WatchProgress(Browser page) => page.Script("""
        const seen = window.seen = { progress: [], status: [] };
        const $ = id => document.getElementById(id);
        new MutationObserver(() => seen.progress.push(Number($('progress').getAttribute('aria-valuenow'))))
          .observe($('progress'), { attributes: true, attributeFilter: ['aria-valuenow'] });
        new MutationObserver(() => seen.status.push($('status').textContent)).observe($('status'), { childList: true, characterData: true, subtree: true });
        """);

    /// <summary>Keeps the body of every POST, and the answer to job submissions, in window.posts.</summary>
    private static Task RecordRequests(Browser page) => page.Script("""
        const posts = window.posts = [];
        const original = window.fetch;
        window.fetch = async (url, init) => {
          const res = await original(url, init);
          if (init && init.method === 'POST') posts.push({ url: String(url), body: init.body, status: res.status, answer: await res.clone().text() });
          return res;
        };
        """);

    private static async Task<JsonNode> JobRequest(Browser page) =>
        JsonNode.Parse((await page.Eval<string>("window.posts.filter(p => p.url.endsWith('/api/v1/jobs')).pop().body")))!;

    private static async Task<JsonNode> JobRequestResponse(Browser page) =>
        JsonNode.Parse((await page.Eval<string>("window.posts.filter(p => p.url.endsWith('/api/v1/jobs')).pop().answer")))!;

    private const string PaintedPixels = """
        (() => { const c = document.getElementById('mask-canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()
        """;

    private static RgbImage Gradient(int width, int height)
    {
        var image = RgbImage.Create(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                (image.Pixels[i], image.Pixels[i + 1], image.Pixels[i + 2]) = ((byte)(x * 255 / width), (byte)(y * 255 / height), 128);
            }
        return image;
    }

    private static (int, int, int) Pixel(RgbImage image, int x, int y)
    {
        int i = (y * image.Width + x) * 3;
        return (image.Pixels[i], image.Pixels[i + 1], image.Pixels[i + 2]);
    }
}
