namespace AsyncDiffusion.Schedulers;

/// <summary>
/// numpy's <c>arange</c>/<c>linspace</c> and the three spacings diffusers builds timestep lists
/// with, reproduced to the rounding (numpy rounds half to even, as <see cref="Math.Round(double)"/>).
/// </summary>
internal static class TimestepSpacing
{
    public const string Leading = "leading", Trailing = "trailing", Linspace = "linspace";

    /// <summary>np.linspace(start, stop, num[, endpoint]).</summary>
    public static double[] NumpyLinspace(double start, double stop, int num, bool endpoint = true)
    {
        var r = new double[num];
        int div = endpoint ? num - 1 : num;
        double step = div > 0 ? (stop - start) / div : 0;
        for (int i = 0; i < num; i++) r[i] = i * step + start;
        if (endpoint && num > 1) r[^1] = stop;
        return r;
    }

    /// <summary>np.arange(start, stop, step) for doubles (length ⌈(stop − start)/step⌉, values start + i·delta).</summary>
    public static double[] NumpyArange(double start, double stop, double step)
    {
        int len = Math.Max(0, (int)Math.Ceiling((stop - start) / step));
        double delta = (start + step) - start;
        var r = new double[len];
        for (int i = 0; i < len; i++) r[i] = start + i * delta;
        return r;
    }

    /// <summary>"leading": (arange(n) · (N // n)).round(), descending, plus the offset.</summary>
    public static double[] LeadingDescending(int trainSteps, int n, int offset)
    {
        int ratio = trainSteps / n;
        var r = new double[n];
        for (int i = 0; i < n; i++) r[i] = (double)(n - 1 - i) * ratio + offset;
        return r;
    }

    /// <summary>
    /// "trailing": round(arange(N, 0, −N/n)) − 1. For a few n numpy's arange yields n + 1
    /// entries ending at −1 (a diffusers bug); only the first n are kept.
    /// </summary>
    public static double[] TrailingDescending(int trainSteps, int n, int? lastTimestep = null)
    {
        var a = NumpyArange(lastTimestep ?? trainSteps, 0, -(double)trainSteps / n);
        return a.Take(n).Select(x => Math.Round(x) - 1).ToArray();
    }

    /// <summary>"linspace": linspace(0, N − 1, n) descending (rounded when <paramref name="round"/>).</summary>
    public static double[] LinspaceDescending(int trainSteps, int n, bool round)
    {
        var l = NumpyLinspace(0, trainSteps - 1, n);
        Array.Reverse(l);
        return round ? l.Select(x => Math.Round(x)).ToArray() : l;
    }
}
