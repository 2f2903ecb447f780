using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Models;

/// <summary>TAESD built from the real trained weights must reconstruct images: encode → decode ≥ 20 dB PSNR.</summary>
public class TaesdTests(ITestOutputHelper log)
{
    private const int Size = 128;

    public static TheoryData<string> Images() => new() { "gradient", "shapes", "photo" };

    [Theory]
    [MemberData(nameof(Images))]
    public void EncodeThenDecodeReconstructsTheImage(string kind)
    {
        using var encoder = Taesd.LoadEncoder(SessionSettings.Default, SafeTensors.Load(SharedData.PathOf("data", "models", "taesd", "taesd_encoder.safetensors")));
        using var decoder = Taesd.LoadDecoder(SessionSettings.Default, SafeTensors.Load(SharedData.PathOf("data", "models", "taesd", "taesd_decoder.safetensors")));
        var image = TestImage(kind);
        var (latents, shape) = encoder.Encode(image, [1, 3, Size, Size]);
        Assert.Equal(new long[] { 1, 4, Size / 8, Size / 8 }, shape);
        var (decoded, decodedShape) = decoder.Decode(latents, shape);
        Assert.Equal(new long[] { 1, 3, Size, Size }, decodedShape);
        double mse = image.Zip(decoded, (a, b) => Math.Pow(a - Math.Clamp(b, 0, 1), 2)).Average();
        double psnr = 10 * Math.Log10(1 / mse);
        log.WriteLine($"{kind}: PSNR {psnr:F2} dB");
        Assert.True(psnr >= 20, $"{kind}: PSNR {psnr:F2} dB, expected at least 20 dB");
    }

    [Fact]
    public void BuiltInWeightsAreTheSharedOnes()
    {
        var builtIn = Taesd.BuiltInDecoderWeights;
        var shared = SafeTensors.Load(SharedData.PathOf("data", "models", "taesd", "taesd_decoder.safetensors"));
        Assert.Equal(shared.Names.Order(), builtIn.Names.Order());
        Assert.Equal(shared["19.weight"].Values, builtIn["19.weight"].Values);
    }

    [Fact]
    public void CorruptSafetensorsIsAClearError()
    {
        using var dir = new TempFolder();
        string path = dir.File("bad.safetensors", "\u0010\0\0\0\0\0\0\0{\"a\": 1}");
        var e = Assert.Throws<AsyncDiffusionException>(() => SafeTensors.Load(path));
        Assert.Contains("bad.safetensors", e.Message);
        Assert.Contains("not a valid .safetensors file", e.Message);
    }

    /// <summary>CHW images in [0, 1]: a smooth gradient, flat shapes on a background, and a noise-free photo-like scene.</summary>
    [Fact]
    public void TiledDecodingOfALargeImageMatchesTheWholeDecodeAbove35Db()
    {
        const int size = 768; // 96×96 latents: 3×3 tiles of 48 with 12 overlap
        using var encoder = Taesd.LoadEncoder(SessionSettings.Default);
        using var decoder = Taesd.LoadDecoder(SessionSettings.Default);
        var (latents, _) = encoder.Encode(TestImage("photo", size), [1, 3, size, size]);
        var whole = decoder.DecodeImage(latents, 4, size / 8, size / 8);
        var tiled = new TiledLatentDecoder(decoder, scaleFactor: 8, tileLatent: 48, overlapLatent: 12, maxUntiledLatent: 0).DecodeImage(latents, 4, size / 8, size / 8);
        Assert.Equal((whole.Width, whole.Height), (tiled.Width, tiled.Height));
        double mse = whole.Pixels.Zip(tiled.Pixels, (a, b) => Math.Pow(a - b, 2)).Average();
        double psnr = 10 * Math.Log10(255.0 * 255.0 / Math.Max(mse, 1e-12));
        log.WriteLine($"tiled vs whole TAESD decode at {size} px: PSNR {psnr:F2} dB");
        Assert.True(psnr >= 35, $"PSNR {psnr:F2} dB, expected at least 35 dB");
        Assert.NotEqual(whole.Pixels, tiled.Pixels); // it really decoded in tiles
    }

    internal static float[] TestImage(string kind, int size = Size)
    {
        var img = new float[3 * size * size];
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
        {
            double u = x / (size - 1.0), v = y / (size - 1.0);
            (double r, double g, double b) = kind switch
            {
                "gradient" => (u, v, 1 - 0.5 * (u + v)),
                "shapes" => Shapes(u, v),
                _ => Photo(u, v),
            };
            img[0 * size * size + y * size + x] = (float)Math.Clamp(r, 0, 1);
            img[1 * size * size + y * size + x] = (float)Math.Clamp(g, 0, 1);
            img[2 * size * size + y * size + x] = (float)Math.Clamp(b, 0, 1);
        }
        return img;
    }

    private static (double, double, double) Shapes(double u, double v)
    {
        if ((u - 0.3) * (u - 0.3) + (v - 0.35) * (v - 0.35) < 0.04) return (0.9, 0.2, 0.15);
        if (u > 0.55 && u < 0.9 && v > 0.5 && v < 0.85) return (0.15, 0.35, 0.8);
        if (v > 0.75 && u < 0.4) return (0.95, 0.85, 0.2);
        return (0.85, 0.85, 0.8);
    }

    // Sky gradient, a sun, rolling hills with soft shading.
    private static (double, double, double) Photo(double u, double v)
    {
        double hill = 0.6 + 0.08 * Math.Sin(6 * u) + 0.04 * Math.Sin(13 * u + 1);
        if (v > hill)
        {
            double shade = 0.7 + 0.3 * Math.Cos(4 * u + 3 * v);
            return (0.2 * shade, 0.55 * shade, 0.2 * shade);
        }
        double sun = Math.Exp(-((u - 0.75) * (u - 0.75) + (v - 0.25) * (v - 0.25)) / 0.005);
        return (0.45 + 0.5 * sun + 0.2 * v, 0.65 + 0.3 * sun + 0.1 * v, 0.95 - 0.3 * sun);
    }
}
