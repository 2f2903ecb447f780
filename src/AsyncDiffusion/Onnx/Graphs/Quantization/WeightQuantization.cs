namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>Weights quantized to int8: values, one scale per channel, and how much signal survived.</summary>
internal sealed record QuantizedWeights(sbyte[] Values, float[] Scales, double SqnrDb);

/// <summary>
/// Symmetric per-channel int8 weight quantization: each output channel's largest magnitude maps
/// to ±127 (−128 is never used, so the range is symmetric and the zero point is 0, as ONNX
/// Runtime's int8 kernels expect for weights).
/// </summary>
internal static class WeightQuantization
{
    public const int Levels = 127;

    /// <summary>
    /// Quantizes <paramref name="weights"/>, viewed as [outer, channels, inner] with one scale per
    /// channel: [Cout, Cin·kh·kw] for a Conv is (1, Cout, Cin·kh·kw); [K, N] for a MatMul is (K, N, 1).
    /// </summary>
    public static QuantizedWeights PerChannel(ReadOnlySpan<float> weights, int outer, int channels, int inner)
    {
        if ((long)outer * channels * inner != weights.Length)
            throw new ArgumentException($"{weights.Length} weights do not form [{outer}, {channels}, {inner}].", nameof(weights));
        var maxAbs = new float[channels];
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                var block = weights.Slice((o * channels + c) * inner, inner);
                float m = maxAbs[c];
                foreach (float w in block) m = Math.Max(m, Math.Abs(w));
                maxAbs[c] = m;
            }
        // An all-zero channel quantizes exactly with any scale; 1 keeps the scale valid (> 0).
        var scales = maxAbs.Select(m => m > 0 ? m / Levels : 1f).ToArray();

        var q = new sbyte[weights.Length];
        double signal = 0, noise = 0;
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
            {
                int start = (o * channels + c) * inner;
                float s = scales[c];
                for (int i = start; i < start + inner; i++)
                {
                    float w = weights[i];
                    int v = (int)Math.Clamp(MathF.Round(w / s, MidpointRounding.ToEven), -Levels, Levels);
                    q[i] = (sbyte)v;
                    double err = w - v * s;
                    signal += (double)w * w;
                    noise += err * err;
                }
            }
        return new QuantizedWeights(q, scales, Decibels(signal, noise));
    }

    /// <summary>10·log10(signal / noise), capped at 200 dB for exact results.</summary>
    public static double Decibels(double signal, double noise) =>
        noise <= 0 ? 200 : signal <= 0 ? double.NegativeInfinity : Math.Min(200, 10 * Math.Log10(signal / noise));
}
