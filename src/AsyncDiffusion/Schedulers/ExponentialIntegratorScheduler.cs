namespace AsyncDiffusion.Schedulers;

/// <summary>
/// Base of the solvers that integrate in log-SNR time (DPM-Solver++ multistep and singlestep,
/// UniPC, DEIS): integer timesteps, a sigma per timestep plus a final one, the unscaled model
/// input, init_noise_sigma = 1, add_noise in the variance-preserving form at a sigma, and a
/// history of converted model outputs as long as the solver order.
/// </summary>
public abstract class ExponentialIntegratorScheduler : SigmaScheduler
{
    protected ExponentialIntegratorScheduler(SchedulerConfig config, string className) : base(config, className)
    {
        SolverOrder = Settings.Int("solver_order");
        if (SolverOrder is < 1 or > 3)
            throw Settings.Invalid("solver_order", $"is {SolverOrder}; {ClassName} supports orders 1, 2 and 3");
        Settings.RequireFalse("thresholding");
        Settings.RequireFalse("use_flow_sigmas");
        Settings.RequireFalse("use_dynamic_shifting");
        Settings.SigmaSchedule();
        History = new double[SolverOrder][];
    }

    protected int SolverOrder { get; }

    /// <summary>Converted model outputs, oldest first; the newest is last.</summary>
    protected double[]?[] History { get; private set; }

    // Fresh arrays, never cleared in place: a run's copy of a configured scheduler must share no state.
    protected override void ResetState()
    {
        base.ResetState();
        History = new double[SolverOrder][];
    }

    protected void PushHistory(double[] converted)
    {
        for (int i = 0; i < History.Length - 1; i++) History[i] = History[i + 1];
        History[^1] = converted;
    }

    /// <summary>The newest converted output (back = 0) or an older one.</summary>
    protected double[] HistoryAt(int back) => History[History.Length - 1 - back]!;

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var timesteps = SpacedTimesteps(steps);
        var kind = Settings.SigmaSchedule();
        double[] sigmas;
        if (kind == SigmaScheduleKind.Interpolated)
            sigmas = timesteps.Select(Table.InterpolateSigma).ToArray();
        else
        {
            // The formula spans the whole training table, whatever the spacing.
            var (min, max) = ConvertedSigmaRange();
            sigmas = SigmaSchedules.Create(kind, min, max, steps);
            timesteps = sigmas.Select(s =>
            {
                double t = Table.SigmaToTimestep(s);
                if (kind == SigmaScheduleKind.Karras && RoundsKarrasTimesteps) t = Math.Round(t);
                return (double)(long)t; // int64, truncating: exponential and beta lists can end in 1, 0, 0
            }).ToArray();
        }
        SigmaArray = sigmas.Select(s => (float)s).Append(FinalSigma(kind, (float)sigmas[^1])).ToArray();
        TimestepArray = timesteps;
        InitNoiseSigma = 1.0;
    }

    /// <summary>Integer timesteps for the spacing: "linspace" and "leading" space n + 1 points and drop the last.</summary>
    protected virtual double[] SpacedTimesteps(int steps)
    {
        int last = Table.TrainTimesteps;
        return Settings.Spacing() switch
        {
            TimestepSpacing.Linspace => SpacedLinspace(last, steps),
            TimestepSpacing.Leading => SpacedLeading(last, steps, Settings.Int("steps_offset")),
            _ => TimestepSpacing.TrailingDescending(Table.TrainTimesteps, steps, last),
        };
    }

    protected static double[] SpacedLinspace(int last, int steps) =>
        TimestepSpacing.NumpyLinspace(0, last - 1, steps + 1).Select(x => Math.Round(x)).Reverse().Take(steps).ToArray();

    protected static double[] SpacedLeading(int last, int steps, int offset)
    {
        int ratio = last / (steps + 1);
        var r = new double[steps];
        for (int i = 0; i < steps; i++) r[i] = (double)(steps - i) * ratio + offset;
        return r;
    }

    /// <summary>The end of the schedule after lambda_min_clipped cuts off timesteps whose log-SNR is below it.</summary>
    protected int ClippedLastTimestep()
    {
        double clip = Settings.Number("lambda_min_clipped");
        int n = Table.TrainTimesteps;
        if (double.IsNegativeInfinity(clip)) return n;
        int clipped = 0;
        for (int i = n - 1; i >= 0; i--)
        {
            double a = Table.AlphasCumprod[i];
            if (Math.Log(Math.Sqrt(a)) - Math.Log(Math.Sqrt(1 - a)) < clip) clipped++;
            else break;
        }
        return n - clipped;
    }

    /// <summary>sigma_min and sigma_max of a Karras/exponential/beta schedule: the table's extremes.</summary>
    protected virtual (double Min, double Max) ConvertedSigmaRange() => (Table.Sigmas[0], Table.Sigmas[^1]);

    /// <summary>Whether Karras timesteps are rounded before the int64 cast (everywhere but DPM++ with cosine betas).</summary>
    protected virtual bool RoundsKarrasTimesteps => true;

    /// <summary>The sigma after the last timestep.</summary>
    protected abstract float FinalSigma(SigmaScheduleKind kind, float lastScheduleSigma);

    /// <summary>final_sigmas_type: "zero", or "sigma_min" = the table's sigma at t = 0.</summary>
    protected float ZeroOrTableMinimum() =>
        Settings.Choice("final_sigmas_type", "zero", "sigma_min") == "sigma_min" ? Table.Sigmas[0] : 0f;

    /// <summary>alpha_t = 1/sqrt(sigma² + 1) and sigma_t = sigma·alpha_t of a variance-exploding sigma.</summary>
    protected static (double Alpha, double Sigma) AlphaSigma(double sigma)
    {
        double alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    /// <summary>Half the log-SNR, log(alpha_t) − log(sigma_t): +∞ at sigma 0.</summary>
    protected static double Lambda(double sigma)
    {
        var (alpha, s) = AlphaSigma(sigma);
        return Math.Log(alpha) - Math.Log(s);
    }

    /// <summary>The model output as a prediction of the clean sample (x0) at this sigma.</summary>
    protected double[] PredictData(ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, double sigma)
    {
        var (alpha, s) = AlphaSigma(sigma);
        var x0 = new double[sample.Length];
        for (int k = 0; k < x0.Length; k++)
            x0[k] = Prediction switch
            {
                PredictionType.Epsilon => (sample[k] - s * modelOutput[k]) / alpha,
                PredictionType.VPrediction => alpha * sample[k] - s * modelOutput[k],
                _ => modelOutput[k],
            };
        return x0;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination)
    {
        var (alpha, sigma) = AlphaSigma(SigmaArray[NoiseIndex(timestep)]);
        for (int k = 0; k < original.Length; k++) destination[k] = (float)(alpha * original[k] + sigma * noise[k]);
    }
}
