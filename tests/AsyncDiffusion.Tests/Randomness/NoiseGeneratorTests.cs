using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Tests.Randomness;

public class NoiseGeneratorTests
{
    [Theory]
    [InlineData("torch", NoiseGeneratorKind.Torch)]
    [InlineData("CPU", NoiseGeneratorKind.Torch)]
    [InlineData("numpy", NoiseGeneratorKind.Numpy)]
    [InlineData("gpu", NoiseGeneratorKind.Philox)]
    [InlineData("NV", NoiseGeneratorKind.Philox)]
    public void NamesUsersTypeSelectTheGenerator(string name, NoiseGeneratorKind kind) => Assert.Equal(kind, NoiseGenerators.Parse(name));

    [Fact]
    public void UnknownGeneratorNameListsTheChoices()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => NoiseGenerators.Parse("dice"));
        Assert.Contains("'dice'", e.Message);
        Assert.Contains("numpy", e.Message);
    }

    [Fact]
    public void NumpySeedBeyond32BitsIsRejected()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => NoiseGenerators.Create(NoiseGeneratorKind.Numpy, 1UL << 33));
        Assert.Contains("4294967295", e.Message);
    }

    [Theory]
    [InlineData(NoiseGeneratorKind.Torch)]
    [InlineData(NoiseGeneratorKind.Numpy)]
    [InlineData(NoiseGeneratorKind.Philox)]
    public void LatentNoiseIsStandardNormal(NoiseGeneratorKind kind)
    {
        var values = new float[4 * 64 * 64];
        NoiseGenerators.Create(kind, 12345).NextGaussian(values);
        double mean = values.Average(v => (double)v);
        double variance = values.Average(v => (v - mean) * (v - mean));
        Assert.InRange(mean, -0.05, 0.05);
        Assert.InRange(variance, 0.95, 1.05);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }
}
