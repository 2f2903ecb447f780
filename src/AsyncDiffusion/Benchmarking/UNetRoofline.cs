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
/// each round times the probe's chains (Conv, MatMul, fused attention; each warm, the second of
/// two runs), one UNet call (batch 2, as with classifier-free guidance), and the chains again,
/// and compares the call with the mean of its ideal times at the rates before and after it:
/// convolutions at Conv's rate, products with weights at MatMul's, attention's products at
/// attention's (at MatMul's where the model's attention is not fused). The whole call counts (every operator, the time between
/// them), so this is the stricter reading of the profile's per-operator roofline, and on a shared
/// machine whose speed moves by tens of percent over seconds, the only fair one.
/// </summary>
public sealed record UNetRoofline(string Size, int Batch, double ConvGFlop, double MatMulGFlop, double AttentionGFlop, IReadOnlyList<RooflineRound> Rounds)
{
    /// <summary>Whether the model's attention runs fused (then its products are taken at the attention rate, else at MatMul's).</summary>
    public bool AttentionFused { get; init; } = true;

    public double MedianPercent => Rounds.Count == 0 ? 0 : SampleStatistics.Median(Rounds.Select(r => r.Percent));
    public double LowestPercent => Rounds.Count == 0 ? 0 : Rounds.Min(r => r.Percent);
    public double HighestPercent => Rounds.Count == 0 ? 0 : Rounds.Max(r => r.Percent);
    public double MedianCallMilliseconds => Rounds.Count == 0 ? 0 : SampleStatistics.Median(Rounds.Select(r => r.CallMilliseconds));

    /// <summary>The call's FLOPs at given rates (GFLOP/s), in milliseconds.</summary>
    public double IdealMilliseconds(double conv, double matMul, double attention) =>
        (ConvGFlop / conv + (MatMulGFlop - AttentionGFlop) / matMul + AttentionGFlop / (AttentionFused ? attention : matMul)) * 1000;

    /// <summary>The call's FLOPs at one probe reading's rates, in milliseconds.</summary>
    public double IdealMilliseconds(ProbeResult rates) => IdealMilliseconds(rates.Conv3x3Gflops, rates.MatMulGflops, rates.RateFor("MultiHeadAttention"));

    /// <summary>
    /// Loads the UNet of <paramref name="modelFolder"/> (through the optimised-graph cache when
    /// <paramref name="settings"/> names one) and measures <paramref name="rounds"/> rounds after
    /// one warm-up round. FLOPs are counted on the model's graph at these shapes.
    /// </summary>
    public static UNetRoofline Run(string modelFolder, int width, int height, SessionSettings settings, int rounds = 6)
    {
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "at least one round");
        string folder = Path.Combine(modelFolder, "unet");
        using var unet = UNet.Load(folder, settings);
        var call = new UNetCall(unet, width, height, folder);
        var flops = FlopCounter.Count(Path.Combine(folder, "model.onnx"), call.InputShapes(unet));
        if (flops.Unresolved > 0)
            throw new AsyncDiffusionException($"{Path.Combine(folder, "model.onnx")}: the shapes of {flops.Unresolved} Conv/MatMul nodes could not be worked out, so its FLOPs (and the roofline) are unknown.");
        // Attention's products run at the fused kernel's rate only where they were fused; as exported they are MatMuls.
        bool fused = unet.Model.Load?.FusedAttentions > 0;
        var result = new UNetRoofline($"{width}x{height}", UNetCall.Batch, flops.Conv / 1e9, (flops.MatMul + flops.Gemm) / 1e9, flops.Attention / 1e9, []) { AttentionFused = fused };
        using var chains = new ProbeChains(settings.IntraOpThreads);

        double Call()
        {
            ProbeChains.Settle();
            return call.Time(unet);
        }

        chains.TimeOnce();
        Call();
        var measured = new List<RooflineRound>();
        for (int r = 0; r < rounds; r++)
        {
            var before = chains.TimeOnce();
            double ms = Call();
            var after = chains.TimeOnce();
            // The ideal time at each side's rates, averaged: averaging times, not rates (a rate's mean would favour the faster side).
            double ideal = (result.IdealMilliseconds(before) + result.IdealMilliseconds(after)) / 2;
            static double Harmonic(double a, double b) => 2 / (1 / a + 1 / b);
            measured.Add(new RooflineRound(ms, ideal, Harmonic(before.Conv3x3Gflops, after.Conv3x3Gflops), Harmonic(before.MatMulGflops, after.MatMulGflops),
                Harmonic(before.RateFor("MultiHeadAttention"), after.RateFor("MultiHeadAttention"))));
        }
        return result with { Rounds = measured };
    }
}
