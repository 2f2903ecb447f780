namespace AsyncDiffusion.Schedulers;

/// <summary>
/// What DPM2 and DPM2 a share: the Euler-family schedule (Karras timesteps rounded), a
/// geometric-mean sigma each first call steps to, and the timesteps of those sigmas interleaved
/// after each step's own. Only epsilon and v-prediction exist in diffusers' versions.
/// </summary>
public abstract class KDpm2FamilyScheduler : SecondOrderSigmaScheduler, IInterpolatedSigmas
{
    protected KDpm2FamilyScheduler(SchedulerConfig config, string className) : base(config, className)
    {
        Settings.Choice("prediction_type", "epsilon", "v_prediction");
    }

    public IReadOnlyList<float> SigmasInterpol => SigmasInterpolArray;
    public IReadOnlyList<float> SigmasUp => SigmasUpArray;
    public IReadOnlyList<float> SigmasDown => SigmasDownArray;

    protected float[] SigmasInterpolArray { get; set; } = [];
    protected float[] SigmasUpArray { get; set; } = [];
    protected float[] SigmasDownArray { get; set; } = [];

    /// <summary>The step sigmas (with the final 0, float32) and their timesteps (Karras ones rounded; float32 where diffusers keeps float32).</summary>
    protected (double[] Timesteps, float[] Sigmas) BaseSchedule(int steps)
    {
        var (timesteps, sigmas) = EulerFamilySchedule(steps);
        var kind = Settings.SigmaSchedule();
        var t = kind switch
        {
            SigmaScheduleKind.Karras => timesteps.Select(x => Math.Round(x)).ToArray(),
            SigmaScheduleKind.Interpolated => timesteps.Select(x => (double)(float)x).ToArray(),
            _ => timesteps,
        };
        return (t, sigmas.Select(s => (float)s).Append(0f).ToArray());
    }

    /// <summary>exp(lerp(ln a, ln b, ½)) in float32, as torch computes it: NaN or 0 where a sigma is 0.</summary>
    protected static float GeometricMean(float a, float b)
    {
        float start = MathF.Log(a), end = MathF.Log(b);
        return MathF.Exp(end - (end - start) * 0.5f);
    }

    /// <summary>The (float32) timestep of an interpolated sigma, for the model call made at it.</summary>
    protected double TimestepOf(float sigma)
    {
        double t = Table.SigmaToTimestep(sigma);
        return Settings.SigmaSchedule() == SigmaScheduleKind.Interpolated ? (float)t : t;
    }

    protected static float InputDivisor(float sigma) => MathF.Sqrt(sigma * sigma + 1f);
}
