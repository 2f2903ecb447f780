namespace AsyncDiffusion.Schedulers;

/// <summary>
/// Base of the schedulers that step in sigma space (the Euler family, Heun, DPM2, and the
/// DPM-Solver/UniPC/DEIS exponential integrators):
/// a sigma per timestep plus a final one, and a step index fixed on the first call (from the
/// begin index, else by finding the timestep, taking the second match when it occurs twice).
/// </summary>
public abstract class SigmaScheduler : Scheduler
{
    protected SigmaScheduler(SchedulerConfig config, string className) : base(config, className) { }

    public override bool HasBeginIndex => true;

    public int? StepIndex { get; protected set; }

    protected override void ResetState() => StepIndex = null;

    protected int CurrentIndex(double timestep)
    {
        StepIndex ??= BeginIndex ?? IndexForTimestep(timestep);
        if (StepIndex >= TimestepArray.Length)
            throw new InvalidOperationException($"{ClassName} has already run all {TimestepArray.Length} steps; call SetTimesteps again.");
        return StepIndex.Value;
    }

    protected int IndexForTimestep(double timestep)
    {
        int first = -1, count = 0, second = -1;
        for (int i = 0; i < TimestepArray.Length; i++)
        {
            if (TimestepArray[i] != timestep) continue;
            if (count == 0) first = i;
            else if (count == 1) second = i;
            count++;
        }
        if (count == 0) return TimestepArray.Length - 1;
        return count > 1 ? second : first;
    }

    /// <summary>Index used by add_noise: begin index, else current step, else the timestep's position.</summary>
    protected int NoiseIndex(double timestep) => BeginIndex ?? StepIndex ?? IndexForTimestep(timestep);

    /// <summary>Euler-family timesteps (float32 values, as diffusers stores them).</summary>
    protected double[] EulerFamilyTimesteps(int steps)
    {
        int n = Table.TrainTimesteps;
        var t = Settings.Spacing() switch
        {
            TimestepSpacing.Linspace => TimestepSpacing.LinspaceDescending(n, steps, round: false),
            TimestepSpacing.Leading => TimestepSpacing.LeadingDescending(n, steps, Settings.Int("steps_offset")),
            _ => TimestepSpacing.TrailingDescending(n, steps),
        };
        return t.Select(x => (double)(float)x).ToArray();
    }

    /// <summary>
    /// The Euler family's schedule (Euler, LMS, Heun, DPM2, DPM2 a): spaced float32 timesteps and
    /// the table's sigmas interpolated there; with a Karras, exponential or beta schedule, sigmas
    /// from that formula between the spaced extremes (or the config's sigma_min/sigma_max where the
    /// class has them) and timesteps mapped back through the log-sigma table, unrounded.
    /// </summary>
    protected (double[] Timesteps, double[] Sigmas) EulerFamilySchedule(int steps, double? sigmaMin = null, double? sigmaMax = null)
    {
        var timesteps = EulerFamilyTimesteps(steps);
        var sigmas = timesteps.Select(Table.InterpolateSigma).ToArray();
        var kind = Settings.SigmaSchedule();
        if (kind == SigmaScheduleKind.Interpolated) return (timesteps, sigmas);
        sigmas = SigmaSchedules.Create(kind, sigmaMin ?? sigmas[^1], sigmaMax ?? sigmas[0], steps);
        return (sigmas.Select(Table.SigmaToTimestep).ToArray(), sigmas);
    }

    /// <summary>init_noise_sigma of the Euler family: max sigma, or sqrt(max² + 1) for "leading" (in float32).</summary>
    protected double EulerFamilyInitNoiseSigma()
    {
        float max = SigmaArray.Max();
        return Settings.Spacing() == TimestepSpacing.Leading
            ? MathF.Sqrt(max * max + 1f)
            : max;
    }

    /// <summary>sample / sqrt(sigma² + 1), the Euler family's input scaling.</summary>
    protected float KarrasInputDivisor(double timestep)
    {
        float sigma = SigmaArray[CurrentIndex(timestep)];
        return MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>The Euler family's add_noise: x0 + sigma·noise (variance exploding form).</summary>
    protected void AddNoiseVarianceExploding(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination)
    {
        float sigma = SigmaArray[NoiseIndex(timestep)];
        for (int i = 0; i < original.Length; i++) destination[i] = original[i] + noise[i] * sigma;
    }

    /// <summary>Predicted clean sample from the model output at sigma (variance exploding parameterisation).</summary>
    protected double PredictOriginalAtSigma(double modelOutput, double sample, double sigma) => Prediction switch
    {
        PredictionType.Epsilon => sample - sigma * modelOutput,
        PredictionType.VPrediction => modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1),
        _ => modelOutput,
    };
}
