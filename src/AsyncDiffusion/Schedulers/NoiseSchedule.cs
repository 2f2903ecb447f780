namespace AsyncDiffusion.Schedulers;

/// <summary>
/// The training noise table, built as diffusers builds it in float32: betas, alphas_cumprod
/// (accumulated in double, stored as float32), sigmas = sqrt((1 − ᾱ)/ᾱ) and their logs.
/// Reproducing the float32 rounding keeps the table itself out of the error budget.
/// </summary>
public sealed class NoiseSchedule
{
    public int TrainTimesteps { get; }
    public float[] Betas { get; }
    public float[] AlphasCumprod { get; }
    public float[] Sigmas { get; }
    public float[] LogSigmas { get; }

    public NoiseSchedule(SchedulerSettings s)
    {
        int n = s.Int("num_train_timesteps");
        if (n < 2 || n > 100_000) throw s.Invalid("num_train_timesteps", $"is {n}; expected 2 to 100000");
        TrainTimesteps = n;
        s.RequireFalse("rescale_betas_zero_snr");

        var trained = s.NumberArray("trained_betas");
        if (trained is not null)
        {
            if (trained.Length != n) throw s.Invalid("trained_betas", $"has {trained.Length} values; expected num_train_timesteps = {n}");
            Betas = trained.Select(b => (float)b).ToArray();
        }
        else
        {
            double start = s.Number("beta_start"), end = s.Number("beta_end");
            Betas = s.Choice("beta_schedule", "scaled_linear", "linear", "squaredcos_cap_v2") switch
            {
                "scaled_linear" => TorchLinspace((float)Math.Sqrt(start), (float)Math.Sqrt(end), n).Select(b => b * b).ToArray(),
                "linear" => TorchLinspace((float)start, (float)end, n),
                _ => CosineBetas(n),
            };
        }
        foreach (var b in Betas)
            if (!(b > 0 && b < 1)) throw s.Invalid("beta_*", $"give a beta of {b}; every beta must lie in (0, 1)");

        AlphasCumprod = new float[n];
        double acc = 1.0;
        for (int i = 0; i < n; i++)
        {
            float alpha = 1.0f - Betas[i];
            acc *= alpha;
            AlphasCumprod[i] = (float)acc;
        }
        Sigmas = new float[n];
        LogSigmas = new float[n];
        for (int i = 0; i < n; i++)
        {
            float a = AlphasCumprod[i];
            Sigmas[i] = MathF.Sqrt((1.0f - a) / a);
            LogSigmas[i] = (float)Math.Log(Sigmas[i]);
        }
    }

    /// <summary>
    /// torch.linspace for float32 as the CPU kernel of the torch builds diffusers runs on computes it
    /// (torch 1.13, AVX2): 16-element blocks of two 8-lane vectors, each vector anchored at its first
    /// index (start + step·i before the middle, end − step·(n − 1 − i) after it, multiply-add fused)
    /// and filled by adding lane·step; the remainder element by element. This reproduces diffusers'
    /// betas bit for bit (the textbook per-element formula differs by an ulp in 272 of SD's 1000).
    /// </summary>
    private static float[] TorchLinspace(float start, float end, int steps)
    {
        var r = new float[steps];
        float step = (end - start) / (steps - 1);
        int half = steps / 2;
        int vectorized = steps / 16 * 16;
        for (int c = 0; c < vectorized; c += 8)
        {
            float anchor = c < half ? MathF.FusedMultiplyAdd(step, c, start) : MathF.FusedMultiplyAdd(-step, steps - c - 1, end);
            for (int lane = 0; lane < 8; lane++) r[c + lane] = MathF.FusedMultiplyAdd(lane, step, anchor);
        }
        for (int i = vectorized; i < steps; i++)
            r[i] = i < half ? start + step * i : end - step * (steps - i - 1);
        return r;
    }

    // betas_for_alpha_bar with the cosine schedule ("squaredcos_cap_v2"), max beta 0.999.
    private static float[] CosineBetas(int n)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new float[n];
        for (int i = 0; i < n; i++)
            betas[i] = (float)Math.Min(1 - AlphaBar((i + 1.0) / n) / AlphaBar((double)i / n), 0.999);
        return betas;
    }

    /// <summary>sigma → fractional timestep by interpolating in log-sigma between table entries (diffusers' <c>_sigma_to_t</c>).</summary>
    public double SigmaToTimestep(double sigma)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        // argmax of the cumulative count of (logSigma >= table): the last such index, or 0.
        int last = 0;
        for (int i = 0; i < LogSigmas.Length; i++) if (logSigma - LogSigmas[i] >= 0) last = i;
        int low = Math.Min(last, LogSigmas.Length - 2);
        double lo = LogSigmas[low], hi = LogSigmas[low + 1];
        double w = Math.Clamp((lo - logSigma) / (lo - hi), 0, 1);
        return (1 - w) * low + w * (low + 1);
    }

    /// <summary>np.interp of the sigma table at (possibly fractional) timesteps.</summary>
    public double InterpolateSigma(double t)
    {
        if (t <= 0) return Sigmas[0];
        if (t >= Sigmas.Length - 1) return Sigmas[^1];
        int j = (int)Math.Floor(t);
        double slope = (double)Sigmas[j + 1] - Sigmas[j];
        return slope * (t - j) + Sigmas[j];
    }

    /// <summary>ᾱ at an integer timestep; negative means "before the start", which takes <paramref name="final"/>.</summary>
    public double AlphaCumprodAt(int t, double final) => t >= 0 ? AlphasCumprod[t] : final;
}
