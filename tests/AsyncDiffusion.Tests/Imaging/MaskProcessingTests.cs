using System.Text.Json;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Imaging;

/// <summary>
/// The mask operations of AUTOMATIC1111's inpainting against Pillow 9.4 and OpenCV 4.6 themselves
/// (Reference/mask_cases.json, written by Reference/make_mask_cases.py): every byte equal.
/// </summary>
public sealed class MaskProcessingTests
{
    private static readonly JsonElement Cases = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Imaging", "Reference", "mask_cases.json"))).RootElement;

    private sealed record Raster(int Width, int Height, int Channels, byte[] Pixels)
    {
        public GreyImage Grey => Channels == 1 ? new(Width, Height, Pixels) : throw new InvalidOperationException("not grey");
        public RgbImage Rgb => Channels == 3 ? new(Width, Height, Pixels) : throw new InvalidOperationException("not RGB");
        public RgbaImage Rgba => Channels == 4 ? new(Width, Height, Pixels) : throw new InvalidOperationException("not RGBA");
    }

    private static Raster Read(JsonElement e) => new(e.GetProperty("width").GetInt32(), e.GetProperty("height").GetInt32(), e.GetProperty("channels").GetInt32(),
        Convert.FromBase64String(e.GetProperty("pixels").GetString()!));

    private static IEnumerable<JsonElement> Section(string name) => Cases.GetProperty(name).EnumerateArray();

    private static void AssertSame(Raster expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Pixels.Length, actual.Length);
        int differing = expected.Pixels.Zip(actual, (a, b) => a != b ? 1 : 0).Sum();
        int first = -1;
        for (int i = 0; i < actual.Length; i++)
            if (actual[i] != expected.Pixels[i])
            {
                first = i;
                break;
            }
        Assert.True(differing == 0, $"{what}: {differing} of {actual.Length} bytes differ; first at {first}: expected {(first >= 0 ? expected.Pixels[first] : 0)}, got {(first >= 0 ? actual[first] : 0)}");
    }

    [Fact]
    public void LanczosAndBicubicResizeEqualPillowsBytes()
    {
        int n = 0;
        foreach (var c in Section("resize"))
        {
            var input = Read(c.GetProperty("input"));
            var expected = Read(c.GetProperty("output"));
            var filter = c.GetProperty("filter").GetString() == "lanczos" ? ResampleFilter.Lanczos : ResampleFilter.Bicubic;
            (float, float, float, float)? box = c.TryGetProperty("box", out var b) ? (b[0].GetSingle(), b[1].GetSingle(), b[2].GetSingle(), b[3].GetSingle()) : null;
            var actual = PillowResampling.Resize(input.Pixels, input.Width, input.Height, input.Channels, expected.Width, expected.Height, filter, box);
            AssertSame(expected, actual, $"resize case {n++} ({input.Width}x{input.Height} → {expected.Width}x{expected.Height}, {filter}{(box is null ? "" : $", box {box}")})");
        }
        Assert.True(n >= 10);
    }

    [Fact]
    public void ResizeModesEqualA1111sResizeImage()
    {
        int n = 0;
        foreach (var c in Section("resize_image"))
        {
            var input = Read(c.GetProperty("input"));
            var expected = Read(c.GetProperty("output"));
            var mode = (ResizeMode)c.GetProperty("mode").GetInt32();
            var actual = A1111ImageResize.Resize(input.Pixels, input.Width, input.Height, input.Channels, expected.Width, expected.Height, mode);
            AssertSame(expected, actual, $"resize_image case {n++} ({mode}, {input.Width}x{input.Height} → {expected.Width}x{expected.Height})");
        }
        Assert.True(n >= 7);
    }

    [Fact]
    public void MaskBlurEqualsOpenCvsGaussianBlur()
    {
        int n = 0;
        foreach (var c in Section("blur"))
        {
            var input = Read(c.GetProperty("input")).Grey;
            int sigma = c.GetProperty("sigma").GetInt32();
            bool horizontal = c.GetProperty("axis").GetString() == "x";
            var actual = MaskBlur.Blur(input, sigma, horizontal);
            AssertSame(Read(c.GetProperty("output")), actual.Pixels, $"blur σ={sigma} along {(horizontal ? "x" : "y")}");
            n++;
        }
        Assert.Equal(8, n);
    }

    [Fact]
    public void MaskedContentFillEqualsA1111sFill()
    {
        foreach (var c in Section("fill"))
        {
            var image = Read(c.GetProperty("image")).Rgb;
            var mask = Read(c.GetProperty("mask")).Grey;
            AssertSame(Read(c.GetProperty("output")), MaskedContentFill.Apply(image, mask).Pixels, $"fill {image.Width}x{image.Height}");
        }
    }

    [Fact]
    public void OverlayAndPasteBackEqualA1111sApplyOverlay()
    {
        foreach (var c in Section("overlay"))
        {
            var image = Read(c.GetProperty("image")).Rgb;
            var mask = Read(c.GetProperty("mask")).Grey;
            var generated = Read(c.GetProperty("generated")).Rgb;
            var overlay = InpaintOverlay.Create(image, mask);
            AssertSame(Read(c.GetProperty("overlay")), overlay.Pixels, "overlay");
            (int, int, int, int)? paste = c.TryGetProperty("paste", out var p) ? (p[0].GetInt32(), p[1].GetInt32(), p[2].GetInt32(), p[3].GetInt32()) : null;
            var result = InpaintOverlay.Apply(generated, paste, overlay);
            AssertSame(Read(c.GetProperty("output")), result.Pixels, $"composite{(paste is null ? "" : " with paste-back")}");
            for (int i = 0; i < mask.Pixels.Length; i++)
                if (mask.Pixels[i] == 0)
                    for (int k = 0; k < 3; k++) Assert.Equal(image.Pixels[i * 3 + k], result.Pixels[i * 3 + k]);
        }
    }

    [Fact]
    public void UploadedMasksAreReadAsA1111Reads()
    {
        foreach (var c in Section("binary_mask"))
        {
            var input = Read(c.GetProperty("input"));
            var rgba = input.Channels == 4 ? input.Rgba : ToRgba(input.Rgb);
            AssertSame(Read(c.GetProperty("output")), InpaintMasks.FromImage(rgba, c.GetProperty("round").GetBoolean()).Pixels, $"binary mask round={c.GetProperty("round")}");
        }
    }

    [Fact]
    public void BlurReachesExactlyTheKernelRadiusAndNoFurther()
    {
        // A vertical edge at x = 40: σ = 4 means a 21-tap kernel, so columns 30..49 change and nothing beyond.
        var mask = GreyImage.Create(80, 4);
        for (int y = 0; y < 4; y++)
            for (int x = 40; x < 80; x++) mask.Pixels[y * 80 + x] = 255;
        var blurred = MaskBlur.Apply(mask, 4, 4);
        Assert.Equal(21, MaskBlur.KernelSize(4));
        for (int x = 0; x < 80; x++)
        {
            byte v = blurred.Pixels[x];
            if (x < 30) Assert.Equal(0, v);
            else if (x >= 50) Assert.Equal(255, v);
            else Assert.InRange(v, 1, 254);
        }
        for (int x = 1; x < 80; x++) Assert.True(blurred.Pixels[x] >= blurred.Pixels[x - 1], "the transition rises monotonically");
        // The kernel sums to exactly 1 in OpenCV's 8-bit fixed point.
        foreach (int sigma in new[] { 1, 2, 4, 7, 16, 64 }) Assert.Equal(256, MaskBlur.FixedPointKernel(MaskBlur.KernelSize(sigma), sigma).Sum());
    }

    [Fact]
    public void TransparencyMasksMarkOnlyFullyTransparentPixels()
    {
        var image = RgbaImage.Create(3, 1);
        image.Pixels[3] = 0;
        image.Pixels[7] = 1;
        image.Pixels[11] = 255;
        Assert.Equal(new byte[] { 255, 0, 0 }, InpaintMasks.FromTransparency(image).Pixels);
    }

    [Fact]
    public void OnlyMaskedRegionIsPaddedAndWidenedToTheGenerationsAspect()
    {
        // A 20×10 box in a 200×100 image, padding 5, processed at 64×64 → a square region, centred, inside the image.
        var padded = MaskCropRegion.Pad((50, 40, 70, 50), 5, 200, 100);
        Assert.Equal((45, 35, 75, 55), padded);
        var region = MaskCropRegion.Expand(padded, 64, 64, 200, 100);
        Assert.Equal((45, 30, 75, 60), region);
        // At the border the region is shifted back inside the image.
        Assert.Equal((0, 0, 30, 30), MaskCropRegion.Expand((0, 0, 30, 10), 64, 64, 200, 100));
        Assert.Equal((170, 70, 200, 100), MaskCropRegion.Expand((170, 90, 200, 100), 64, 64, 200, 100));
    }

    private static RgbaImage ToRgba(RgbImage rgb)
    {
        var rgba = RgbaImage.Create(rgb.Width, rgb.Height);
        for (int i = 0; i < rgb.Width * rgb.Height; i++)
        {
            for (int c = 0; c < 3; c++) rgba.Pixels[i * 4 + c] = rgb.Pixels[i * 3 + c];
            rgba.Pixels[i * 4 + 3] = 255;
        }
        return rgba;
    }
}
