using System.Diagnostics;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Benchmarking;

/// <summary>One UNet call and the probe's rates timed around it.</summary>
public sealed record RooflineRound(double CallMilliseconds, double IdealMilliseconds, double ConvGflops, double MatMulGflops, double AttentionGflops)
{
    /// <summary>The call's FLOPs at this round's per-operator rates, as a share of the call's time (100: at the roofline).</summary>
    public double Percent => CallMilliseconds > 0 ? 100 * IdealMilliseconds / CallMilliseconds : 0;
}

/// <summary>
/// A model's UNet step against the per-operator roofline, both measured in one process in turns:
/// each round times the probe's chains (Conv, MatMul, fused attention), one UNet call (batch 2,
/// as with classifier-free guidance), and the chains again, and compares the call with its FLOPs
/// at the mean of the rates around it: convolutions at Conv's, products with weights at MatMul's,
/// attention's products at attention's. The whole call counts (every operator, the time between
/// them), so this is the stricter reading of the profile's per-operator roofline, and on a shared
/// machine whose speed moves by tens of percent over seconds, the only fair one.
/// </summary>
public sealed record UNetRoofline(string Size, int Batch, double ConvGFlop, double MatMulGFlop, double AttentionGFlop, IReadOnlyList<RooflineRound> Rounds)
{
    public double MedianPercent => SampleStatistics.Median(Rounds.Select(r => r.Percent));
    public double LowestPercent => Rounds.Min(r => r.Percent);
    public double HighestPercent => Rounds.Max(r => r.Percent);
    public double MedianCallMilliseconds => SampleStatistics.Median(Rounds.Select(r => r.CallMilliseconds));

    /// <summary>The call's FLOPs at given rates (GFLOP/s), in milliseconds.</summary>
    public double IdealMilliseconds(double conv, double matMul, double attention) =>
        (ConvGFlop / conv + (MatMulGFlop - AttentionGFlop) / matMul + AttentionGFlop / attention) * 1000;

    /// <summary>
    /// Loads the UNet of <paramref name="modelFolder"/> (through the optimised-graph cache when
    /// <paramref name="settings"/> names one) and measures <paramref name="rounds"/> rounds after
    /// one warm-up round. FLOPs are counted on the model's graph at these shapes.
    /// </summary>
    public static UNetRoofline Run(string modelFolder, int width, int height, SessionSettings settings, int rounds = 6, int textTokens = 77)
    {
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "at least one round");
        string folder = Path.Combine(modelFolder, "unet");
        using var unet = UNet.Load(folder, settings);
        const int scale = 8, batch = 2; // SD's VAE factor; a CFG pair
        int h = height / scale, w = width / scale, channels = unet.InputChannels, hidden = unet.CrossAttentionDim ?? 768;
        var flops = FlopCounter.Count(Path.Combine(folder, "model.onnx"), new Dictionary<string, long[]>
        {
            [unet.InputsInOrder[0]] = [batch, channels, h, w],
            [unet.InputsInOrder[1]] = unet.TimestepShape(batch),
            [unet.InputsInOrder[2]] = [batch, textTokens, hidden],
        });
        if (flops.Unresolved > 0)
            throw new AsyncDiffusionException($"{Path.Combine(folder, "model.onnx")}: the shapes of {flops.Unresolved} Conv/MatMul nodes could not be worked out, so its FLOPs (and the roofline) are unknown.");
        var result = new UNetRoofline($"{width}x{height}", batch, flops.Conv / 1e9, (flops.MatMul + flops.Gemm) / 1e9, flops.Attention / 1e9, []);

        var rng = new Random(5);
        var sample = Enumerable.Range(0, batch * channels * h * w).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var context = Enumerable.Range(0, batch * textTokens * hidden).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        double[] timesteps = [500, 500];
        using var chains = new ProbeChains(settings.IntraOpThreads);

        double Call()
        {
            ProbeChains.Settle();
            var clock = Stopwatch.StartNew();
            unet.Predict(sample, [batch, channels, h, w], timesteps, context, [batch, textTokens, hidden]);
            return clock.Elapsed.TotalMilliseconds;
        }

        ProbeResult Chains() => chains.TimeOnce();

        Chains();
        Call();
        var measured = new List<RooflineRound>();
        for (int r = 0; r < rounds; r++)
        {
            var before = Chains();
            double ms = Call();
            var after = Chains();
            double conv = (before.Conv3x3Gflops + after.Conv3x3Gflops) / 2, matmul = (before.MatMulGflops + after.MatMulGflops) / 2;
            double attention = ((before.AttentionGflops ?? before.MatMulGflops) + (after.AttentionGflops ?? after.MatMulGflops)) / 2;
            measured.Add(new RooflineRound(ms, result.IdealMilliseconds(conv, matmul, attention), conv, matmul, attention));
        }
        return result with { Rounds = measured };
    }
}
