namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' DPMSolverMultistepScheduler with <c>algorithm_type</c> "dpmsolver++" (DPM++ 2M/3M)
/// or "sde-dpmsolver++" (DPM++ 2M/3M SDE, which draws fresh noise on every step): model outputs
/// are converted to x0 and combined over the last one to three steps in log-SNR time. A final
/// sigma of 0 gives lambda = +∞ and returns x0 exactly; equal final sigmas (Karras with
/// sigma_min) make h = 0 and the second-order step the identity.
/// </summary>
public sealed class DpmSolverMultistepScheduler : ExponentialIntegratorScheduler
{
    private readonly bool _sde;
    private readonly bool _heun;
    private int _lowerOrderNums;

    public DpmSolverMultistepScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.DpmSolverMultistep)
    {
        _sde = Settings.Choice("algorithm_type", "dpmsolver++", "sde-dpmsolver++") == "sde-dpmsolver++";
        _heun = Settings.Choice("solver_type", "midpoint", "heun") == "heun";
        Settings.Choice("final_sigmas_type", "zero", "sigma_min");
        Settings.Choice("variance_type", [null]);
        Settings.RequireFalse("use_lu_lambdas");
    }

    protected override void ResetState()
    {
        base.ResetState();
        _lowerOrderNums = 0;
    }

    protected override double[] SpacedTimesteps(int steps)
    {
        int last = ClippedLastTimestep();
        return Settings.Spacing() switch
        {
            TimestepSpacing.Linspace => SpacedLinspace(last, steps),
            TimestepSpacing.Leading => SpacedLeading(last, steps, Settings.Int("steps_offset")),
            _ => TimestepSpacing.TrailingDescending(Table.TrainTimesteps, steps, last),
        };
    }

    protected override bool RoundsKarrasTimesteps => Settings.Choice("beta_schedule", "scaled_linear", "linear", "squaredcos_cap_v2") != "squaredcos_cap_v2";

    protected override float FinalSigma(SigmaScheduleKind kind, float lastScheduleSigma) => ZeroOrTableMinimum();

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        int count = TimestepArray.Length;
        bool lowerOrderFinal = i == count - 1 &&
            (Settings.Bool("euler_at_final") || (Settings.Bool("lower_order_final") && count < 15) || ZeroOrTableMinimum() == 0f);
        bool lowerOrderSecond = i == count - 2 && Settings.Bool("lower_order_final") && count < 15;

        PushHistory(PredictData(modelOutput, sample, SigmaArray[i]));
        var z = _sde ? DrawNoise(noise, sample.Length) : null;

        int order = SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal ? 1
            : SolverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond ? 2
            : 3;
        Update(i, order, sample, z);
        if (_lowerOrderNums < SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
    }

    private void Update(int i, int order, Span<float> sample, float[]? z)
    {
        double sigmaNext = SigmaArray[i + 1];
        var (alphaT, sigmaT) = AlphaSigma(sigmaNext);
        double lambdaT = Lambda(sigmaNext), lambda0 = Lambda(SigmaArray[i]);
        double h = lambdaT - lambda0;
        double ratio = sigmaT / AlphaSigma(SigmaArray[i]).Sigma;

        // Coefficients of sample, D0, D1, D2 and the noise in x_t = a·x + b0·D0 + b1·D1 + b2·D2 + c·z.
        double a, b0, b1 = 0, b2 = 0, c = 0;
        if (_sde)
        {
            double e = Math.Exp(-2.0 * h);
            a = ratio * Math.Exp(-h);
            b0 = alphaT * (1 - e);
            if (order == 2) b1 = _heun ? alphaT * ((1.0 - e) / (-2.0 * h) + 1.0) : 0.5 * alphaT * (1 - e);
            if (order == 3)
            {
                b1 = alphaT * ((1.0 - e) / (-2.0 * h) + 1.0);
                b2 = alphaT * ((1.0 - e - 2.0 * h) / Math.Pow(2.0 * h, 2) - 0.5);
            }
            c = sigmaT * Math.Sqrt(1.0 - e);
        }
        else
        {
            double em1 = Math.Exp(-h) - 1.0;
            a = ratio;
            b0 = -alphaT * em1;
            if (order == 2) b1 = _heun ? alphaT * (em1 / h + 1.0) : -0.5 * alphaT * em1;
            if (order == 3)
            {
                b1 = alphaT * (em1 / h + 1.0);
                b2 = -alphaT * ((em1 + h) / (h * h) - 0.5);
            }
        }

        var m0 = HistoryAt(0);
        double[]? m1 = order >= 2 ? HistoryAt(1) : null, m2 = order == 3 ? HistoryAt(2) : null;
        double r0 = 0, r1 = 0;
        if (order >= 2)
        {
            double lambda1 = Lambda(SigmaArray[i - 1]);
            r0 = (lambda0 - lambda1) / h;
            if (order == 3) r1 = (lambda1 - Lambda(SigmaArray[i - 2])) / h;
        }
        for (int k = 0; k < sample.Length; k++)
        {
            double d1 = 0, d2 = 0;
            if (order == 2) d1 = 1.0 / r0 * (m0[k] - m1![k]);
            else if (order == 3)
            {
                double d10 = 1.0 / r0 * (m0[k] - m1![k]), d11 = 1.0 / r1 * (m1[k] - m2![k]);
                d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
                d2 = 1.0 / (r0 + r1) * (d10 - d11);
            }
            double noiseTerm = z is null ? 0 : c * z[k];
            sample[k] = (float)(a * sample[k] + b0 * m0[k] + b1 * d1 + b2 * d2 + noiseTerm);
        }
    }
}
