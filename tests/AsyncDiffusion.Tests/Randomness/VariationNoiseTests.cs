using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Randomness;

/// <summary>
/// AUTOMATIC1111's variation seeds (<c>ImageRNG.first</c>): the seed's noise slerped towards the
/// subseed's column by column, the seed's noise made at another size and pasted centred, and the
/// generator that goes on to make step noise. Checked against a hand computation with the
/// project's seeded generators.
/// </summary>
public sealed class VariationNoiseTests
{
    private const int C = 4, H = 6, W = 5;

    private static float[] Draw(NoiseGeneratorKind kind, long seed, int length)
    {
        var values = new float[length];
        NoiseGenerators.Create(kind, (ulong)seed).NextGaussian(values);
        return values;
    }

    [Theory]
    [InlineData(NoiseGeneratorKind.Torch)]
    [InlineData(NoiseGeneratorKind.Philox)]
    [InlineData(NoiseGeneratorKind.Numpy)]
    public void VariationNoiseIsTheSlerpOfSeedAndSubseedNoiseDownEachColumn(NoiseGeneratorKind kind)
    {
        const double strength = 0.3;
        var noise = new float[C * H * W];
        VariationNoise.First(kind, 1234, new Variation(99, strength), C, H, W, noise);

        // By hand: A1111's slerp(val, low, high) normalises along dim 1 of [C, H, W], i.e. down each (channel, column).
        var low = Draw(kind, 1234, noise.Length);
        var high = Draw(kind, 99, noise.Length);
        for (int c = 0; c < C; c++)
            for (int x = 0; x < W; x++)
            {
                double nl = 0, nh = 0, dot = 0;
                for (int y = 0; y < H; y++)
                {
                    int i = (c * H + y) * W + x;
                    nl += (double)low[i] * low[i];
                    nh += (double)high[i] * high[i];
                    dot += (double)low[i] * high[i];
                }
                double omega = Math.Acos(dot / Math.Sqrt(nl) / Math.Sqrt(nh)), so = Math.Sin(omega);
                for (int y = 0; y < H; y++)
                {
                    int i = (c * H + y) * W + x;
                    double expected = Math.Sin((1 - strength) * omega) / so * low[i] + Math.Sin(strength * omega) / so * high[i];
                    Assert.True(Math.Abs(expected - noise[i]) < 2e-5, $"[{c}, {y}, {x}]: {noise[i]} vs {expected}");
                }
            }
    }

    [Fact]
    public void NearlyParallelNoiseFallsBackToA1111sLinearMix()
    {
        // Identical noise: every column's dot product is 1, so A1111 returns low·val + high·(1 − val).
        var low = Draw(NoiseGeneratorKind.Torch, 5, C * H * W);
        var high = low.Select(v => v * 1.0001f).ToArray();
        var mixed = VariationNoise.Slerp(0.25, low, high, C, H, W);
        for (int i = 0; i < low.Length; i++) Assert.Equal(low[i] * 0.25f + high[i] * 0.75f, mixed[i]);
    }

    [Fact]
    public void StrengthZeroIsTheSeedsPlainNoiseAndStepNoiseFollowsIt()
    {
        var noise = new float[C * H * W];
        var generator = VariationNoise.First(NoiseGeneratorKind.Torch, 77, new Variation(12345, 0), C, H, W, noise);
        var plain = NoiseGenerators.Create(NoiseGeneratorKind.Torch, 77);
        var expected = new float[noise.Length];
        plain.NextGaussian(expected);
        Assert.Equal(expected, noise);
        var next = new float[noise.Length];
        generator.NextGaussian(next);
        plain.NextGaussian(expected);
        Assert.Equal(expected, next);
    }

    [Fact]
    public void SeedResizeFromASmallerSizePastesThatNoiseCentredOverTheGeneratorsOwn()
    {
        var noise = new float[C * H * W];
        var generator = VariationNoise.First(NoiseGeneratorKind.Torch, 8, new Variation(0, 0, (3, 2)), C, H, W, noise);
        var own = Draw(NoiseGeneratorKind.Torch, 8, C * H * W);
        var small = Draw(NoiseGeneratorKind.Torch, 8, C * 3 * 2);
        int top = (H - 3) / 2, left = (W - 2) / 2; // 1, 1
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                {
                    bool inside = y >= top && y < top + 3 && x >= left && x < left + 2;
                    float expected = inside ? small[(c * 3 + y - top) * 2 + x - left] : own[(c * H + y) * W + x];
                    Assert.Equal(expected, noise[(c * H + y) * W + x]);
                }
        // The image's generator made its own full-size noise first; step noise continues after it.
        var second = new float[noise.Length];
        generator.NextGaussian(second);
        var replay = NoiseGenerators.Create(NoiseGeneratorKind.Torch, 8);
        var skip = new float[noise.Length];
        replay.NextGaussian(skip);
        replay.NextGaussian(skip);
        Assert.Equal(skip, second);
    }

    [Fact]
    public void SeedResizeFromALargerSizeCropsItsCentreAsPythonsFloorDivisionDoes()
    {
        // Larger by 3 columns: A1111's dx = (5 − 8) // 2 = −2, so it copies 8 − 4 = 4 columns from column 2 and the last column stays the generator's.
        var noise = new float[C * H * W];
        VariationNoise.First(NoiseGeneratorKind.Torch, 8, new Variation(0, 0, (H, 8)), C, H, W, noise);
        var own = Draw(NoiseGeneratorKind.Torch, 8, C * H * W);
        var large = Draw(NoiseGeneratorKind.Torch, 8, C * H * 8);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
            {
                for (int x = 0; x < 4; x++) Assert.Equal(large[(c * H + y) * 8 + x + 2], noise[(c * H + y) * W + x]);
                Assert.Equal(own[(c * H + y) * W + 4], noise[(c * H + y) * W + 4]);
            }
    }

    [Fact]
    public void SeedResizeAndVariationSlerpAtTheResizeSizeBeforePasting()
    {
        var noise = new float[C * H * W];
        VariationNoise.First(NoiseGeneratorKind.Philox, 3, new Variation(4, 0.5, (H, 3)), C, H, W, noise);
        var slerped = VariationNoise.Slerp(0.5, Draw(NoiseGeneratorKind.Philox, 3, C * H * 3), Draw(NoiseGeneratorKind.Philox, 4, C * H * 3), C, H, 3);
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < 3; x++)
                    Assert.Equal(slerped[(c * H + y) * 3 + x], noise[(c * H + y) * W + x + 1]);
    }

    [Fact]
    public void PlansGiveEveryImageTheSeedAndCountSubseedsUpWhenAVariationStrengthIsSet()
    {
        using var model = AsyncDiffusion.Models.ModelFolder.Open(TinyModels.Folder("optimum"));
        var varied = GenerationPlan.Create(new GenerationRequest { Prompt = "p", Seed = 10, Subseed = 20, SubseedStrength = 0.5, Count = 3 }, model);
        Assert.Equal([10L, 10, 10], varied.Seeds);
        Assert.Equal([20L, 21, 22], varied.Subseeds);
        var plain = GenerationPlan.Create(new GenerationRequest { Prompt = "p", Seed = 10, Count = 3 }, model);
        Assert.Equal([10L, 11, 12], plain.Seeds);
        Assert.All(plain.Subseeds, s => Assert.InRange(s, 0, 4294967293)); // −1: A1111's random.randrange(4294967294), reported
        Assert.Equal(plain.Subseeds[0] + 2, plain.Subseeds[2]);
    }

    [Theory]
    [InlineData(-0.1, 0, 0, "subseed strength")]
    [InlineData(1.5, 0, 0, "subseed strength")]
    [InlineData(0, 4096, 512, "seed resize from is 4096x512")]
    public void OutOfRangeVariationSettingsAreRefused(double strength, int resizeWidth, int resizeHeight, string message)
    {
        using var model = AsyncDiffusion.Models.ModelFolder.Open(TinyModels.Folder("optimum"));
        var e = Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(new GenerationRequest
        {
            Prompt = "p", SubseedStrength = strength, SeedResizeFromWidth = resizeWidth, SeedResizeFromHeight = resizeHeight,
        }, model));
        Assert.Contains(message, e.Message);
    }
}
