using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Uploaded images that lie about themselves, and uploads whose shape would make resizing expensive.</summary>
public sealed class UploadHardeningTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    /// <summary>A PNG signature and IHDR declaring <paramref name="width"/>×<paramref name="height"/>, then nothing: 33 bytes, or more with a cut-off IDAT.</summary>
    internal static byte[] HeaderOnlyPng(int width, int height, int extra = 0)
    {
        var png = ImageCodec.Encode(RgbImage.Create(8, 8), ImageFormat.Png);
        var bytes = png.AsSpan(0, 33 + extra).ToArray();
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        return bytes;
    }

    /// <summary>A BMP's 54-byte file and DIB headers declaring <paramref name="width"/>×<paramref name="height"/> 24-bit pixels, and no pixels.</summary>
    internal static byte[] HeaderOnlyBmp(int width, int height)
    {
        var bmp = new byte[54];
        bmp[0] = (byte)'B';
        bmp[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), 54 + width * height * 3);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), 24);
        return bmp;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public void AHeaderThatDeclares2000x2000PixelsIsNotAnImage()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode(HeaderOnlyBmp(2000, 2000), "upload.bmp"));
        Assert.Contains("'upload.bmp' is truncated", e.Message);
        Assert.Contains("2000×2000", e.Message);
        var png = ImageCodec.Encode(RgbImage.Create(300, 200), ImageFormat.Png);
        e = Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode(png[..(png.Length - 30)], "cut.png"));
        Assert.Contains("'cut.png' is truncated", e.Message);
        Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode(HeaderOnlyPng(2000, 2000, extra: 21), "header.png"));
    }

    [Fact]
    public void AJpegCutInHalfIsRefused()
    {
        var jpeg = ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Jpeg);
        var e = Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode(jpeg[..(jpeg.Length / 2)], "half.jpg"));
        Assert.Contains("'half.jpg'", e.Message);
    }

    [Fact]
    public async Task TruncatedUploadsAre400sNamingTheFieldOnEveryUploadRoute()
    {
        string b64 = Convert.ToBase64String(HeaderOnlyBmp(2000, 2000));
        var a1111 = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 2, "init_images": ["{{b64}}"]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, a1111.StatusCode);
        string text = await a1111.Content.ReadAsStringAsync();
        Assert.Contains("init_images[0]", text);
        Assert.Contains("truncated", text);

        var native = await Http.PostAsync("/api/v1/jobs", Json($$"""{"prompt": "x", "steps": 2, "init_image": "data:image/png;base64,{{b64}}"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, native.StatusCode);
        Assert.Contains("init_image", await native.Content.ReadAsStringAsync());

        using var form = new MultipartFormDataContent();
        var image = new ByteArrayContent(Convert.FromBase64String(b64));
        image.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(image, "image", "x.bmp");
        form.Add(new StringContent("x"), "prompt");
        var openai = await Http.PostAsync("/v1/images/edits", form);
        Assert.Equal(HttpStatusCode.BadRequest, openai.StatusCode);
        var error = JsonDocument.Parse(await openai.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("image", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task TruncatedOrOversizedMasksAre400sNamingTheMaskOnEveryMaskRoute()
    {
        string init = Convert.ToBase64String(ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));
        string truncated = Convert.ToBase64String(HeaderOnlyBmp(2000, 2000));
        string oversized = Convert.ToBase64String(HeaderOnlyPng(5000, 5000)); // 25 M pixels, over the 16 M limit: refused from the header
        foreach (string mask in new[] { truncated, oversized })
        {
            var a1111 = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 2, "init_images": ["{{init}}"], "mask": "{{mask}}"}"""));
            Assert.Equal(HttpStatusCode.BadRequest, a1111.StatusCode);
            Assert.Contains("mask", await a1111.Content.ReadAsStringAsync());

            var native = await Http.PostAsync("/api/v1/jobs", Json($$"""{"prompt": "x", "steps": 2, "init_image": "{{init}}", "mask": "data:image/png;base64,{{mask}}"}"""));
            Assert.Equal(HttpStatusCode.BadRequest, native.StatusCode);
            Assert.Contains("mask", await native.Content.ReadAsStringAsync());
        }
        var escaped = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 2, "init_images": ["{{init}}"], "mask": "\u0041AAA"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, escaped.StatusCode); // the escaped-text path names the field too
        Assert.Contains("mask", await escaped.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ABlankA1111MaskMeansNoMask()
    {
        string init = Convert.ToBase64String(ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));
        foreach (string blank in new[] { "", "  ", @"\n" }) // an escaped newline in the JSON
        {
            var res = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 2, "width": 64, "height": 64, "denoising_strength": 0.5, "init_images": ["{{init}}"], "mask": "{{blank}}"}"""));
            string body = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.OK, $"mask \"{blank}\": {(int)res.StatusCode} {body}");
            var info = JsonDocument.Parse(body).RootElement.GetProperty("info").GetString()!;
            Assert.DoesNotContain("Mask blur", info);
        }
    }

    [Fact]
    public void CroppingAStripScalesOnlyWhatTheResultKeeps()
    {
        // 1,000,000 × 16 covering 64 × 64 is a 4× scale: scaling the whole strip first would allocate 4,000,000 × 64 RGBA (1 GiB).
        var strip = RgbImage.Create(1_000_000, 16);
        for (int x = 0; x < strip.Width; x++) strip.Pixels[(8 * strip.Width + x) * 3] = (byte)(x >= 499_992 && x < 500_008 ? 250 : 0);
        using var sampler = new PeakRssSampler();
        var clock = Stopwatch.StartNew();
        var square = ImageCodec.ResizeAndCrop(strip, 64, 64);
        double seconds = clock.Elapsed.TotalSeconds;
        long grew = sampler.Stop();
        Assert.Equal((64, 64), (square.Width, square.Height));
        Assert.True(square.Pixels[(32 * 64 + 32) * 3] > 100, "the centre of the strip is what remains");
        Assert.True(grew < 256L << 20, $"resident memory grew by {grew >> 20} MiB while cropping");
        Assert.True(seconds < 3, $"cropping took {seconds:F1} s");
    }

    [Fact]
    public async Task AVeryWideUploadIsServedWithoutStallingOthers()
    {
        var wide = ImageCodec.Encode(RgbImage.Create(1_000_000, 16), ImageFormat.Png);
        var clock = Stopwatch.StartNew();
        var res = await Http.PostAsync("/sdapi/v1/img2img",
            Json($$"""{"prompt": "x", "steps": 2, "width": 64, "height": 64, "denoising_strength": 0.5, "init_images": ["{{Convert.ToBase64String(wide)}}"]}"""));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.True(clock.Elapsed.TotalSeconds < 15, $"took {clock.Elapsed.TotalSeconds:F1} s");
    }
}

/// <summary>Samples the process's resident memory every few milliseconds; <see cref="Stop"/> gives the peak growth.</summary>
internal sealed class PeakRssSampler : IDisposable
{
    private readonly long _start = Rss();
    private long _peak;
    private volatile bool _stop;
    private readonly Thread _thread;

    public PeakRssSampler()
    {
        _peak = _start;
        _thread = new Thread(() =>
        {
            while (!_stop)
            {
                long now = Rss();
                if (now > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, now);
                Thread.Sleep(2);
            }
        }) { IsBackground = true };
        _thread.Start();
    }

    public long Stop()
    {
        _stop = true;
        _thread.Join();
        return Math.Max(0, Math.Max(Interlocked.Read(ref _peak), Rss()) - _start);
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }

    internal static long Rss()
    {
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }
}
