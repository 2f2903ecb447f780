using AsyncDiffusion.Onnx.Graphs.Quantization;

namespace AsyncDiffusion.Tests.Quantization;

public class QuantizationStatisticsTests
{
    private static float[] Gaussian(int n, int seed, double std = 1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(std * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()))).ToArray();
    }

    [Fact]
    public void WeightsAreSymmetricInt8PerOutputChannel()
    {
        // Two output channels of very different scales, as [channels, inner].
        var w = Gaussian(2 * 300, 1);
        for (int i = 300; i < 600; i++) w[i] *= 100;
        var q = WeightQuantization.PerChannel(w, 1, 2, 300);
        for (int c = 0; c < 2; c++)
        {
            var channel = w.AsSpan(c * 300, 300).ToArray();
            Assert.Equal(channel.Max(Math.Abs) / 127, q.Scales[c], 6);
            Assert.Equal(127, q.Values.Skip(c * 300).Take(300).Max(v => Math.Abs((int)v)));
        }
        Assert.DoesNotContain(q.Values, v => v == sbyte.MinValue);
        // Per-channel scales keep the small channel as precise as the large one: ≈ 40 dB for Gaussian weights.
        Assert.InRange(q.SqnrDb, 36, 45);
        var reconstructed = q.Values.Select((v, i) => v * q.Scales[i / 300]).ToArray();
        for (int i = 0; i < w.Length; i++) Assert.True(Math.Abs(w[i] - reconstructed[i]) <= q.Scales[i / 300] / 2 + 1e-6);
    }

    [Fact]
    public void ColumnScalesFollowTheOutputAxisOfAMatMulWeight()
    {
        // [K = 3, N = 2]: column 1 is ten times column 0.
        float[] w = [0.9f, 9, -2, 20, 0.6f, -6];
        var q = WeightQuantization.PerChannel(w, 3, 2, 1);
        Assert.Equal(2f / 127, q.Scales[0], 6);
        Assert.Equal(20f / 127, q.Scales[1], 6);
        Assert.Equal(new sbyte[] { 57, 57, -127, 127, 38, -38 }, q.Values);
    }

    [Fact]
    public void ActivationRangesContainZeroSoZeroIsExact()
    {
        var h = new ActivationHistogram();
        h.Add(Enumerable.Range(0, 1000).Select(i => 2f + i / 1000f).ToArray());
        foreach (var method in Enum.GetValues<ClippingMethod>())
        {
            var r = h.Choose(method);
            Assert.Equal(0f, r.Low);
            Assert.Equal(0, r.ZeroPoint);
            Assert.InRange(r.High, 2.9f, 3.0f);
        }
        var negative = new ActivationHistogram();
        negative.Add([-4f, -1f, -2f]);
        var n = negative.Choose(ClippingMethod.MinMax);
        Assert.Equal((-4f, 0f, (byte)255), (n.Low, n.High, n.ZeroPoint));
    }

    [Fact]
    public void MinimumErrorClippingCutsOutliersOnlyWhereThatLowersTheSquaredError()
    {
        // A million N(0, 1) values and two moderate outliers: clipping them costs less than
        // rounding every value on a 5× coarser grid.
        var h = new ActivationHistogram();
        var values = Gaussian(1_000_000, 2);
        values[17] = 12f;
        values[99] = -10f;
        h.Add(values);
        Assert.Equal((-10f, 12f), (h.Choose(ClippingMethod.MinMax).Low, h.Choose(ClippingMethod.MinMax).High));
        var clipped = h.Choose(ClippingMethod.MinError);
        Assert.InRange(clipped.High, 3f, 8f);
        Assert.InRange(clipped.Low, -8f, -3f);
        var percentile = h.Choose(ClippingMethod.Percentile);
        Assert.InRange(percentile.High, 3.5f, 4.2f);

        // Far outliers among few values: clipping them would cost more than the coarser grid, so they stay.
        var wide = new ActivationHistogram();
        var few = Gaussian(20_000, 3);
        few[5] = 60f;
        wide.Add(few);
        Assert.True(wide.Choose(ClippingMethod.MinError).High > 30, $"{wide.Choose(ClippingMethod.MinError)}");
    }

    [Fact]
    public void LaterLargerBatchesWidenTheHistogramWithoutLosingCounts()
    {
        var h = new ActivationHistogram();
        h.Add(Gaussian(10_000, 3, std: 0.01));
        h.Add(Gaussian(10_000, 4, std: 50));
        h.Add([float.NaN, float.PositiveInfinity]);
        Assert.Equal(20_000, h.Count);
        Assert.Equal(2, h.NonFinite);
        var r = h.Choose(ClippingMethod.MinError);
        // Half the values are ±150: the chosen range must cover most of them.
        Assert.True(r.High > 50 && r.Low < -50, $"range [{r.Low}, {r.High}]");
    }
}
