using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Models;

public class TiledImageEncoderTests(ITestOutputHelper log)
{
    // An "encoder" that sees nothing beyond each 8×8 block (the mean of R, G, B and of all three): tiling cannot
    // change what it computes, so tiled must equal whole wherever the tiles overlap and blend.
    private static float[] BlockMeans(float[] chw, int width, int height)
    {
        int lw = width / 8, lh = height / 8;
        var latent = new float[4 * lh * lw];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    float v = chw[(c * height + y) * width + x] / 64;
                    latent[(c * lh + y / 8) * lw + x / 8] += v;
                    latent[(3 * lh + y / 8) * lw + x / 8] += v / 3;
                }
        return latent;
    }

    [Fact]
    public void ALocalEncoderGivesTheSameLatentsTiledAsWhole()
    {
        const int width = 256, height = 192; // latents 32×24: tiles of 12 with 3 overlap → 4 across, 3 down
        var image = TestPatterns.Chw("photo", Math.Max(width, height)).Take(3 * height * width).ToArray();
        int calls = 0;
        var tiled = new TiledImageEncoder(8, tileLatent: 12, overlapLatent: 3, maxUntiledLatent: 8)
            .Encode(image, width, height, (piece, w, h) => { calls++; Assert.Equal((96, 96), (w, h)); return BlockMeans(piece, w, h); });
        var whole = BlockMeans(image, width, height);
        Assert.Equal(12, calls);
        Assert.Equal(whole.Length, tiled.Length);
        for (int i = 0; i < whole.Length; i++) Assert.Equal(whole[i], tiled[i], 1e-4f);
    }

    [Fact]
    public void AnImageWithinTheLimitIsEncodedWholeInOneCall()
    {
        var image = TestPatterns.Chw("photo", 64);
        int calls = 0;
        var latent = new TiledImageEncoder(8, tileLatent: 4, overlapLatent: 1, maxUntiledLatent: 8)
            .Encode(image, 64, 64, (piece, w, h) => { calls++; Assert.Equal((64, 64), (w, h)); return BlockMeans(piece, w, h); });
        Assert.Equal(1, calls);
        Assert.Equal(BlockMeans(image, 64, 64), latent);
    }

    // The VAE encoder contract with TAESD's real trained encoder: a 768 px image encoded in 3×3 tiles of 384 px
    // decodes (whole, by TAESD's real decoder) to within 35 dB of the image decoded from the whole encode.
    [Fact]
    public void TiledEncodingOfALargeImageWithRealWeightsDecodesAbove35DbOfTheWholeEncode()
    {
        const int size = 768;
        using var folder = new TempFolder();
        File.WriteAllBytes(Path.Combine(folder.Path, "model.onnx"), Taesd.BuildEncoder(Taesd.BuiltInEncoderWeights, vaeContract: true));
        using var whole = VaeEncoder.Load(folder.Path, SessionSettings.Default, 1.0);
        using var tiled = VaeEncoder.Load(folder.Path, new SessionSettings { Memory = MemoryPolicy.Default with { MaxUntiledLatent = 64, DecodeTileLatent = 48 } }, 1.0);
        Assert.Equal((48, 12), (tiled.Tiles.TileLatent, tiled.Tiles.OverlapLatent));
        var image = TestPatterns.Chw("photo", size).Select(v => v * 2 - 1).ToArray(); // the VAE's [-1, 1]

        var a = whole.EncodeTensor(image, size, size).Values;
        var b = tiled.EncodeTensor(image, size, size).Values;
        Assert.Equal(a.Length, b.Length);
        Assert.NotEqual(a, b); // it really encoded in tiles

        using var decoder = Taesd.LoadDecoder(SessionSettings.Default);
        int latentSize = 4 * (size / 8) * (size / 8); // the means; the log-variances follow
        var fromWhole = decoder.DecodeImage(a.AsSpan(0, latentSize), 4, size / 8, size / 8);
        var fromTiled = decoder.DecodeImage(b.AsSpan(0, latentSize), 4, size / 8, size / 8);
        double mse = fromWhole.Pixels.Zip(fromTiled.Pixels, (x, y) => Math.Pow(x - y, 2)).Average();
        double psnr = 10 * Math.Log10(255.0 * 255.0 / Math.Max(mse, 1e-12));
        log.WriteLine($"tiled vs whole TAESD encode at {size} px, decoded: PSNR {psnr:F2} dB");
        Assert.True(psnr >= 35, $"PSNR {psnr:F2} dB, expected at least 35 dB");
    }

    [Fact]
    public void TheSeamlessEncoderIsNeverTiled()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(Path.Combine(folder.Path, "model.onnx"), Taesd.BuildEncoder(Taesd.BuiltInEncoderWeights, vaeContract: true));
        using var encoder = VaeEncoder.Load(folder.Path, new SessionSettings { Memory = MemoryPolicy.Default with { MaxUntiledLatent = 8, DecodeTileLatent = 8 } }, 1.0);
        Assert.Equal(8, encoder.Tiles.MaxUntiledLatent);
        Assert.Equal(int.MaxValue, encoder.Circular.Tiles.MaxUntiledLatent); // its tiles would wrap at their own edges
    }
}
