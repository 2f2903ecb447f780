using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Benchmarking;

/// <summary>
/// A model's UNet step with attention as exported and with fused attention, measured in one
/// process with the two sessions taking turns call by call: on a shared machine, load changes
/// over seconds, so each round's ratio compares two calls made moments apart.
/// </summary>
public sealed record UNetAttentionComparison(string Size, int Batch, int Rounds, int FusedAttentions,
    double ExportedMedianMs, double FusedMedianMs, double MedianRatio, double LowestRatio, double HighestRatio)
{
    /// <summary>
    /// Loads the UNet of <paramref name="modelFolder"/> twice (through the optimised-graph cache
    /// when <paramref name="settings"/> names one) and times <paramref name="rounds"/> rounds of one
    /// call each, batch 2 as with CFG, after one warm-up round. Ratios are exported ÷ fused (above 1: fused is faster).
    /// </summary>
    public static UNetAttentionComparison Run(string modelFolder, int width, int height, SessionSettings settings, int rounds = 6)
    {
        string folder = Path.Combine(modelFolder, "unet");
        using var exported = UNet.Load(folder, settings with { FuseAttention = false });
        using var fused = UNet.Load(folder, settings with { FuseAttention = true });
        var call = new UNetCall(exported, width, height, folder);
        double Time(UNet unet) => call.Time(unet);

        Time(exported);
        Time(fused);
        var a = new List<double>();
        var b = new List<double>();
        var ratios = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            // Alternate which goes first, so a trend in the machine's load favours neither.
            double ta, tb;
            if (r % 2 == 0) { ta = Time(exported); tb = Time(fused); }
            else { tb = Time(fused); ta = Time(exported); }
            a.Add(ta);
            b.Add(tb);
            ratios.Add(ta / tb);
        }
        return new UNetAttentionComparison($"{width}x{height}", UNetCall.Batch, rounds, fused.Model.Load?.FusedAttentions ?? 0,
            SampleStatistics.Median(a), SampleStatistics.Median(b), SampleStatistics.Median(ratios), ratios.Min(), ratios.Max());
    }
}
