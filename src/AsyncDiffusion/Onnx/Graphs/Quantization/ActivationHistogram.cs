namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>How an activation's calibrated range is clipped before it becomes a uint8 scale.</summary>
public enum ClippingMethod
{
    /// <summary>The full observed range: no clipping error, the coarsest steps.</summary>
    MinMax,
    /// <summary>The 0.01 % and 99.99 % quantiles.</summary>
    Percentile,
    /// <summary>The range that minimises the expected squared error (clipping + rounding) over the observed values.</summary>
    MinError,
}

/// <summary>A uint8 activation range. It always contains 0, so zero (padding, ReLU) is exact.</summary>
public sealed record ActivationRange(float Low, float High)
{
    public const int Levels = 255;

    public float Scale => High > Low ? (High - Low) / Levels : 1f;

    public byte ZeroPoint => (byte)Math.Clamp(Math.Round(-Low / Scale, MidpointRounding.ToEven), 0, Levels);

    public static ActivationRange Including(float low, float high) => new(Math.Min(low, 0f), Math.Max(high, 0f));
}

/// <summary>
/// Everything calibration learns about one tensor: exact min and max, the range of each call
/// (one <see cref="Add"/> per model run), and a histogram of its values on [−R, R] whose R
/// doubles (merging neighbouring bins) when a larger value arrives, so any number of batches
/// fits in fixed memory. Thread-safe.
/// </summary>
public sealed class ActivationHistogram
{
    private const int Bins = 4096; // even halves either side of 0, divisible by 4 for merging
    private readonly long[] _counts = new long[Bins];
    private readonly List<(float Min, float Max)> _calls = new();
    private readonly object _gate = new();
    private double _range;

    /// <summary>Each call's min and max, in the order the calls came.</summary>
    public IReadOnlyList<(float Min, float Max)> Calls
    {
        get { lock (_gate) return _calls.ToArray(); }
    }

    /// <summary>
    /// How many times wider the widest call's range (including 0) is than the narrowest's: 1 for
    /// a tensor whose scale never changes; large where the scale follows the input (a diffusion
    /// model's residual stream over a trajectory), which one fixed range serves badly.
    /// </summary>
    public double CallRangeSpread
    {
        get
        {
            lock (_gate)
            {
                var widths = _calls.Select(c => (double)Math.Max(c.Max, 0) - Math.Min(c.Min, 0)).Where(w => w > 0).ToArray();
                return widths.Length == 0 ? 1 : widths.Max() / widths.Min();
            }
        }
    }

    public float Min { get; private set; } = float.PositiveInfinity;
    public float Max { get; private set; } = float.NegativeInfinity;
    public long Count { get; private set; }
    public long NonFinite { get; private set; }

    public void Add(ReadOnlySpan<float> values)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        long nonFinite = 0;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) { nonFinite++; continue; }
            if (v < min) min = v;
            if (v > max) max = v;
        }
        lock (_gate)
        {
            NonFinite += nonFinite;
            _calls.Add(min > max ? (0f, 0f) : (min, max));
            if (min > max) return;
            Min = Math.Min(Min, min);
            Max = Math.Max(Max, max);
            double magnitude = Math.Max(Math.Abs(min), Math.Abs(max));
            if (_range == 0) _range = magnitude > 0 ? magnitude : 1e-6;
            while (magnitude > _range) Widen();
            double toBin = Bins / (2 * _range);
            foreach (float v in values)
            {
                if (!float.IsFinite(v)) continue;
                int bin = (int)((v + _range) * toBin);
                _counts[Math.Clamp(bin, 0, Bins - 1)]++;
            }
            Count += values.Length - nonFinite;
        }
    }

    // Doubles R: old bin i lands in new bin (i + Bins/2) / 2.
    private void Widen()
    {
        var merged = new long[Bins];
        for (int i = 0; i < Bins; i++) merged[(i + Bins / 2) / 2] += _counts[i];
        merged.CopyTo(_counts, 0);
        _range *= 2;
    }

    /// <summary>The range to quantize this tensor with.</summary>
    public ActivationRange Choose(ClippingMethod method)
    {
        lock (_gate)
        {
            if (Count == 0) return new ActivationRange(0, 0);
            return method switch
            {
                ClippingMethod.MinMax => ActivationRange.Including(Min, Max),
                ClippingMethod.Percentile => ActivationRange.Including(Quantile(1e-4), Quantile(1 - 1e-4)),
                _ => MinimumError(),
            };
        }
    }

    private double Width => 2 * _range / Bins;
    private double Edge(int index) => -_range + index * Width;

    private float Quantile(double q)
    {
        double target = q * Count, seen = 0;
        for (int i = 0; i < Bins; i++)
        {
            seen += _counts[i];
            if (seen >= target) return (float)Math.Clamp(q < 0.5 ? Edge(i) : Edge(i + 1), Min, Max);
        }
        return Max;
    }

    /// <summary>
    /// Searches clip edges either side of 0 for the least expected squared error: values beyond
    /// an edge cost their distance squared, values inside cost step²/12 of rounding. Prefix sums
    /// over bin centres make each candidate O(1).
    /// </summary>
    private ActivationRange MinimumError()
    {
        var n = new double[Bins + 1];
        var s1 = new double[Bins + 1];
        var s2 = new double[Bins + 1];
        for (int i = 0; i < Bins; i++)
        {
            double c = Edge(i) + Width / 2;
            n[i + 1] = n[i] + _counts[i];
            s1[i + 1] = s1[i] + _counts[i] * c;
            s2[i + 1] = s2[i] + _counts[i] * c * c;
        }
        int zero = Bins / 2;
        int first = Math.Clamp((int)Math.Floor((Min + _range) / Width), 0, zero);
        int last = Math.Clamp((int)Math.Ceiling((Max + _range) / Width), zero, Bins);
        double best = double.PositiveInfinity;
        int bestLo = first, bestHi = last;
        for (int lo = first; lo <= zero; lo++)
        {
            double a = Edge(lo);
            // Bins below edge lo are clipped up to a.
            double below = a * a * n[lo] - 2 * a * s1[lo] + s2[lo];
            for (int hi = zero; hi <= last; hi++)
            {
                double b = Edge(hi);
                double above = b * b * (n[Bins] - n[hi]) - 2 * b * (s1[Bins] - s1[hi]) + (s2[Bins] - s2[hi]);
                double step = (b - a) / ActivationRange.Levels;
                double error = below + above + (n[hi] - n[lo]) * step * step / 12;
                if (error < best)
                {
                    best = error;
                    bestLo = lo;
                    bestHi = hi;
                }
            }
        }
        return ActivationRange.Including((float)Math.Max(Edge(bestLo), Min), (float)Math.Min(Edge(bestHi), Max));
    }
}
