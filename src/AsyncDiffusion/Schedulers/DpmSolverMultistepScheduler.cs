namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' DPMSolverMultistepScheduler with <c>algorithm_type="dpmsolver++"</c> (DPM++ 1M/2M):
/// model outputs are converted to x0 and combined over the last two steps in log-SNR time.
/// A final sigma of 0 gives lambda = +∞ and returns x0 exactly; equal final sigmas
/// (Karras with sigma_min) make h = 0 and the step the identity.
/// </summary>
public sealed class DpmSolverMultistepScheduler : SigmaScheduler
{
    private readonly int _solverOrder;
    private readonly bool _heun;
    private float[]?[] _modelOutputs;
    private int _lowerOrderNums;

    public DpmSolverMultistepScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.DpmSolverMultistep)
    {
        _solverOrder = Settings.Int("solver_order");
        if (_solverOrder is < 1 or > 2)
            throw Settings.Invalid("solver_order", $"is {_solverOrder}; AsyncDiffusion's DPM-Solver++ supports 1 or 2");
        Settings.Choice("algorithm_type", "dpmsolver++");
        _heun = Settings.Choice("solver_type", "midpoint", "heun") == "heun";
        Settings.Choice("final_sigmas_type", "zero", "sigma_min");
        Settings.RequireFalse("thresholding");
        Settings.RequireFalse("use_exponential_sigmas");
        Settings.RequireFalse("use_beta_sigmas");
        _modelOutputs = new float[_solverOrder][];
    }

    protected override void ResetState()
    {
        base.ResetState();
        _modelOutputs = new float[_solverOrder][];
        _lowerOrderNums = 0;
    }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        int n = Table.TrainTimesteps;
        int last = LastTimestep();
        double[] timesteps = Settings.Spacing() switch
        {
            TimestepSpacing.Linspace => TimestepSpacing.NumpyLinspace(0, last - 1, steps + 1).Select(x => Math.Round(x)).Reverse().Take(steps).ToArray(),
            TimestepSpacing.Leading => LeadingPlusOne(last, steps, Settings.Int("steps_offset")),
            _ => TimestepSpacing.TrailingDescending(n, steps, last),
        };

        bool sigmaMinFinal = Settings.Choice("final_sigmas_type", "zero", "sigma_min") == "sigma_min";
        double[] sigmas;
        if (Settings.Bool("use_karras_sigmas"))
        {
            // Karras range from the whole training table, not the spaced timesteps.
            sigmas = TimestepSpacing.KarrasSigmas(Table.Sigmas[0], Table.Sigmas[^1], steps);
            timesteps = sigmas.Select(s => Math.Round(Table.SigmaToTimestep(s))).ToArray();
            SigmaArray = sigmas.Select(s => (float)s).Append(sigmaMinFinal ? (float)sigmas[^1] : 0f).ToArray();
        }
        else
        {
            sigmas = timesteps.Select(Table.InterpolateSigma).ToArray();
            SigmaArray = sigmas.Select(s => (float)s).Append(sigmaMinFinal ? Table.Sigmas[0] : 0f).ToArray();
        }
        TimestepArray = timesteps;
        InitNoiseSigma = 1.0;
    }

    // "leading" for DPM-Solver divides by steps + 1 and drops the final 0.
    private static double[] LeadingPlusOne(int last, int steps, int offset)
    {
        int ratio = last / (steps + 1);
        var r = new double[steps];
        for (int i = 0; i < steps; i++) r[i] = (double)(steps - i) * ratio + offset;
        return r;
    }

    // lambda_min_clipped cuts the schedule where log-SNR falls below it (-inf: no cut).
    private int LastTimestep()
    {
        double clip = Settings.Number("lambda_min_clipped");
        int n = Table.TrainTimesteps;
        if (double.IsNegativeInfinity(clip)) return n;
        int clipped = 0;
        for (int i = n - 1; i >= 0; i--)
        {
            double a = Table.AlphasCumprod[i];
            double lambda = Math.Log(Math.Sqrt(a)) - Math.Log(Math.Sqrt(1 - a));
            if (lambda < clip) clipped++;
            else break;
        }
        return n - clipped;
    }

    private static (double Alpha, double Sigma) AlphaSigma(double sigma)
    {
        double alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        int count = TimestepArray.Length;
        bool lowerOrderFinal = i == count - 1 &&
            (Settings.Bool("euler_at_final") || (Settings.Bool("lower_order_final") && count < 15) || Settings.Choice("final_sigmas_type", "zero", "sigma_min") == "zero");

        // Convert to the x0 prediction.
        var (alphaS, sigmaS) = AlphaSigma(SigmaArray[i]);
        var x0 = new float[sample.Length];
        for (int k = 0; k < sample.Length; k++)
        {
            x0[k] = Prediction switch
            {
                PredictionType.Epsilon => (float)((sample[k] - sigmaS * modelOutput[k]) / alphaS),
                PredictionType.VPrediction => (float)(alphaS * sample[k] - sigmaS * modelOutput[k]),
                _ => modelOutput[k],
            };
        }
        for (int o = 0; o < _solverOrder - 1; o++) _modelOutputs[o] = _modelOutputs[o + 1];
        _modelOutputs[^1] = x0;

        var (alphaT, sigmaT) = AlphaSigma(SigmaArray[i + 1]);
        double lambdaT = Math.Log(alphaT) - Math.Log(sigmaT);
        double lambdaS0 = Math.Log(alphaS) - Math.Log(sigmaS);
        double h = lambdaT - lambdaS0;
        double ratio = sigmaT / sigmaS, expTerm = alphaT * (Math.Exp(-h) - 1.0);

        if (_solverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal)
        {
            for (int k = 0; k < sample.Length; k++)
                sample[k] = (float)(ratio * sample[k] - expTerm * x0[k]);
        }
        else
        {
            var (alphaS1, sigmaS1) = AlphaSigma(SigmaArray[i - 1]);
            double lambdaS1 = Math.Log(alphaS1) - Math.Log(sigmaS1);
            double r0 = (lambdaS0 - lambdaS1) / h;
            var m1 = _modelOutputs[^2]!;
            for (int k = 0; k < sample.Length; k++)
            {
                double d0 = x0[k], d1 = (1.0 / r0) * (x0[k] - m1[k]);
                double value = _heun
                    ? ratio * sample[k] - expTerm * d0 + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1
                    : ratio * sample[k] - expTerm * d0 - 0.5 * expTerm * d1;
                sample[k] = (float)value;
            }
        }
        if (_lowerOrderNums < _solverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination)
    {
        var (alpha, sigma) = AlphaSigma(SigmaArray[NoiseIndex(timestep)]);
        for (int k = 0; k < original.Length; k++) destination[k] = (float)(alpha * original[k] + sigma * noise[k]);
    }
}
