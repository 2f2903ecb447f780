namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' LCMScheduler: timesteps picked from the distillation schedule (every N/50th),
/// each step predicts the denoised sample with the consistency boundary scalings and re-noises
/// it to the next timestep (all but the last step).
/// </summary>
public sealed class LcmScheduler : Scheduler
{
    private readonly double _finalAlphaCumprod;
    private int? _stepIndex;

    public LcmScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Lcm)
    {
        Settings.RequireFalse("thresholding");
        _finalAlphaCumprod = VariancePreservingTimesteps.FinalAlphaCumprod(Settings, Table);
    }

    public override bool HasBeginIndex => true;

    protected override void ResetState() => _stepIndex = null;

    /// <summary>LCM's img2img pipeline passes the strength to set_timesteps and runs every step it yields.</summary>
    public override int SetTimestepsForStrength(int steps, double strength)
    {
        ValidateStrength(strength);
        Configure(steps, strength);
        return 0;
    }

    protected override void ComputeTimesteps(int steps, double strength) =>
        TimestepArray = ConsistencyTimesteps.Compute(Settings, Table.TrainTimesteps, steps, strength);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = _stepIndex ??= BeginIndex ?? Math.Max(0, Array.IndexOf(TimestepArray, timestep));
        int t = AsIntTimestep(timestep);
        int prev = i + 1 < TimestepArray.Length ? AsIntTimestep(TimestepArray[i + 1]) : t;
        double a = Table.AlphasCumprod[t];
        double aPrev = Table.AlphaCumprodAt(prev, _finalAlphaCumprod);

        const double sigmaData = 0.5;
        double scaled = t * Settings.Number("timestep_scaling");
        double cSkip = sigmaData * sigmaData / (scaled * scaled + sigmaData * sigmaData);
        double cOut = scaled / Math.Sqrt(scaled * scaled + sigmaData * sigmaData);
        bool clip = Settings.Bool("clip_sample");
        double range = Settings.Number("clip_sample_range");

        bool last = i == TimestepArray.Length - 1;
        float[]? z = last ? null : DrawNoise(noise, sample.Length);
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k];
            double x0 = PredictOriginal(modelOutput[k], x, a);
            if (clip) x0 = Math.Clamp(x0, -range, range);
            double denoised = cOut * x0 + cSkip * x;
            sample[k] = (float)(last ? denoised : Math.Sqrt(aPrev) * denoised + Math.Sqrt(1 - aPrev) * z![k]);
        }
        _stepIndex = i + 1;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVariancePreserving(original, noise, AsIntTimestep(timestep), destination);
}
