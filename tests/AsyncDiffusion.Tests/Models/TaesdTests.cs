using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Models;

/// <summary>TAESD built from the real trained weights must reconstruct images: encode → decode ≥ 20 dB PSNR.</summary>
public class TaesdTests(ITestOutputHelper log)
{
    private const int Size = 128;

    public static TheoryData<string> Images() => new(TestPatterns.Kinds);

    [Theory]
    [MemberData(nameof(Images))]
    public void EncodeThenDecodeReconstructsTheImage(string kind)
    {
        using var encoder = Taesd.LoadEncoder(SessionSettings.Default, SafeTensors.Load(SharedData.PathOf("data", "models", "taesd", "taesd_encoder.safetensors")));
        using var decoder = Taesd.LoadDecoder(SessionSettings.Default, SafeTensors.Load(SharedData.PathOf("data", "models", "taesd", "taesd_decoder.safetensors")));
        var image = TestPatterns.Chw(kind, Size);
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
        var e = Assert.Throws<ModelFolderException>(() => SafeTensors.Load(path));
        Assert.Contains("bad.safetensors", e.Message);
        Assert.Contains("not a valid .safetensors file", e.Message);
    }

    [Fact]
    public void TiledDecodingOfALargeImageMatchesTheWholeDecodeAbove35Db()
    {
        const int size = 768; // 96×96 latents: 3×3 tiles of 48 with 12 overlap
        using var encoder = Taesd.LoadEncoder(SessionSettings.Default);
        using var decoder = Taesd.LoadDecoder(SessionSettings.Default);
        var (latents, _) = encoder.Encode(TestPatterns.Chw("photo", size), [1, 3, size, size]);
        var whole = decoder.DecodeImage(latents, 4, size / 8, size / 8);
        var tiled = new TiledLatentDecoder(decoder, scaleFactor: 8, tileLatent: 48, overlapLatent: 12, maxUntiledLatent: 0).DecodeImage(latents, 4, size / 8, size / 8);
        Assert.Equal((whole.Width, whole.Height), (tiled.Width, tiled.Height));
        double mse = whole.Pixels.Zip(tiled.Pixels, (a, b) => Math.Pow(a - b, 2)).Average();
        double psnr = 10 * Math.Log10(255.0 * 255.0 / Math.Max(mse, 1e-12));
        log.WriteLine($"tiled vs whole TAESD decode at {size} px: PSNR {psnr:F2} dB");
        Assert.True(psnr >= 35, $"PSNR {psnr:F2} dB, expected at least 35 dB");
        Assert.NotEqual(whole.Pixels, tiled.Pixels); // it really decoded in tiles
    }
}
