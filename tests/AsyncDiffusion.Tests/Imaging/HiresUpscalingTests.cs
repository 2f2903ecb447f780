using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Tests.Imaging;

/// <summary>
/// Hires fix's upscalers against values worked out by hand: torch's interpolate modes as A1111's
/// latent upscalers call them, and A1111's image upscalers (resize_image with Lanczos/Nearest).
/// </summary>
public sealed class HiresUpscalingTests
{
    private static readonly float[] Row = [0, 1, 4, 9];

    private static float[] Resize(float[] row, int outWidth, InterpolationMode mode, bool antialias = false) =>
        TorchInterpolation.Resize(row, 1, 1, row.Length, 1, outWidth, mode, antialias);

    [Fact]
    public void BilinearDoublingBlendsNeighboursAQuarterAndThreeQuartersAndClampsAtTheEdges()
    {
        // align_corners=False: output i samples 0.5·(i + ½) − ½; below 0 it is clamped, past the end the last value repeats.
        Assert.Equal([0f, 0.25f, 0.75f, 1.75f, 3.25f, 5.25f, 7.75f, 9f], Resize(Row, 8, InterpolationMode.Bilinear));
    }

    [Fact]
    public void BicubicDoublingUsesKeysWeightsWithAMinusThreeQuartersAndClampedIndices()
    {
        // Weights at offset ¼ for a = −0.75: −0.10546875, 0.87890625, 0.26171875, −0.03515625 (mirrored at ¾).
        var up = Resize(Row, 8, InterpolationMode.Bicubic);
        Assert.Equal(-0.10546875f, up[0], 6);                                        // taps 0, 0, 0, 1 at offset ¾
        Assert.Equal(0.87890625f + 0.26171875f * 4 - 0.03515625f * 9, up[3], 6);  // taps 0..3 at offset ¼
    }

    [Fact]
    public void AntialiasedBicubicUsesPillowsCubicEvenWhenUpscaling()
    {
        // Antialiased kernels use a = −0.5: weights −0.0703125, 0.8671875, 0.2265625, −0.0234375 at offset ¼.
        var up = Resize(Row, 8, InterpolationMode.Bicubic, antialias: true);
        Assert.Equal(0.8671875f + 0.2265625f * 4 - 0.0234375f * 9, up[3], 6);
        // Antialiased bilinear upscaling equals plain bilinear.
        Assert.Equal(Resize(Row, 8, InterpolationMode.Bilinear), Resize(Row, 8, InterpolationMode.Bilinear, antialias: true));
    }

    [Fact]
    public void AntialiasedBilinearDownscalingWidensTheTriangleByTheFactor()
    {
        // 4 → 2: output 0 weighs inputs 0, 1, 2 as 3/7, 3/7, 1/7 (Pillow's support-2 triangle); plain bilinear averages two.
        var aa = Resize(Row, 2, InterpolationMode.Bilinear, antialias: true);
        Assert.Equal(1f, aa[0], 5);
        Assert.Equal(40f / 7, aa[1], 5);
        Assert.Equal([0.5f, 6.5f], Resize(Row, 2, InterpolationMode.Bilinear));
    }

    [Fact]
    public void NearestTakesTheFloorOfTheScaledIndexAndNearestExactItsCentre()
    {
        float[] three = [0, 1, 4];
        Assert.Equal([0f, 0f, 1f, 1f, 4f], Resize(three, 5, InterpolationMode.Nearest));      // ⌊i · 0.6⌋
        Assert.Equal([0f, 0f, 1f, 4f, 4f], Resize(three, 5, InterpolationMode.NearestExact)); // ⌊(i + ½) · 0.6⌋
    }

    [Fact]
    public void HeightIsInterpolatedLikeWidthChannelByChannel()
    {
        // [2 channels, 2 rows, 1 column] → 4 rows: each channel's column is doubled on its own.
        var up = TorchInterpolation.Resize([0, 4, 10, 20], 2, 2, 1, 4, 1, InterpolationMode.Bilinear);
        Assert.Equal([0f, 1f, 3f, 4f, 10f, 12.5f, 17.5f, 20f], up);
    }

    [Fact]
    public void CropCentreRemovesHalfTheOverhangEachSideTheOddOneAtTheEnd()
    {
        // A1111: samples[..., ty//2 : h − (ty+1)//2, tx//2 : w − (tx+1)//2] with ty = 3, tx = 0.
        var latents = Enumerable.Range(0, 6).Select(i => (float)i).ToArray(); // [1, 6, 1]
        Assert.Equal([1f, 2f, 3f], HiresUpscaling.CropCentre(latents, 1, 6, 1, 3, 0));
    }

    [Fact]
    public void NearestUpscalerRepeatsPixelsAndLanczosMatchesPillow()
    {
        var image = TestPatterns();
        var nearest = A1111Upscaling.Resize(image, 8, 8, ImageUpscaler.Nearest);
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                Assert.Equal(image.Pixels.AsSpan((y / 2 * 4 + x / 2) * 3, 3).ToArray(), nearest.Pixels.AsSpan((y * 8 + x) * 3, 3).ToArray());
        Assert.Equal(PillowResampling.Resize(image, 8, 8, ResampleFilter.Lanczos).Pixels, A1111Upscaling.Resize(image, 8, 8, ImageUpscaler.Lanczos).Pixels);
        Assert.Equal(PillowResampling.Resize(image, 8, 8, ResampleFilter.Lanczos).Pixels, A1111Upscaling.Resize(image, 8, 8, ImageUpscaler.None).Pixels);
    }

    [Fact]
    public void UpscalersRunAsA1111ChainsThem()
    {
        var image = TestPatterns();
        // 4 → 12 (scale 3): the upscaler to 12, Lanczos down to ⌊12/8⌋·8 = 8 (A1111's Upscaler.upscale), then Lanczos back up to
        // the target (resize_image).
        var expected = PillowResampling.Resize(PillowResampling.Resize(PillowResampling.ResizeNearest(image, 12, 12), 8, 8, ResampleFilter.Lanczos), 12, 12,
            ResampleFilter.Lanczos);
        Assert.Equal(expected.Pixels, A1111Upscaling.Resize(image, 12, 12, ImageUpscaler.Nearest).Pixels);
    }

    private static RgbImage TestPatterns()
    {
        var image = RgbImage.Create(4, 4);
        for (int i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 37 % 251);
        return image;
    }
}
