namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' TCDScheduler (Trajectory Consistency Distillation): LCM's timestep schedule, each
/// step predicting the sample at an intermediate timestep s = ⌊(1 − eta)·t_prev⌋ and, with
/// eta &gt; 0, re-noising it to the next timestep (all but the last step). Ignores
/// timestep_spacing and steps_offset, as diffusers does.
/// </summary>
public sealed class TcdScheduler : Scheduler, IEtaScheduler
{
    private int? _stepIndex;

    public TcdScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Tcd)
    {
        Settings.RequireFalse("thresholding");
    }

    /// <summary>0 (deterministic, the SD pipeline's default) to 1; the TCD authors use 0.3.</summary>
    public double Eta { get; set; }

    public override bool HasBeginIndex => true;

    protected override void ResetState() => _stepIndex = null;

    protected override void ComputeTimesteps(int steps, double strength) =>
        TimestepArray = ConsistencyTimesteps.Compute(Settings, Table.TrainTimesteps, steps, strength);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        if (!(Eta >= 0 && Eta <= 1)) throw new AsyncDiffusionException($"eta is {Eta}; {ClassName} needs 0 to 1.");
        int i = _stepIndex ??= BeginIndex ?? Math.Max(0, Array.IndexOf(TimestepArray, timestep));
        int t = AsIntTimestep(timestep);
        int prev = i + 1 < TimestepArray.Length ? AsIntTimestep(TimestepArray[i + 1]) : 0;
        int s = (int)MathF.Floor((float)(1 - Eta) * prev); // torch: float32 product, floored to long
        double a = Table.AlphasCumprod[t], aPrev = Table.AlphasCumprod[prev], aS = Table.AlphasCumprod[s];

        bool renoise = Eta > 0 && i != NumInferenceSteps - 1;
        var z = renoise ? DrawNoise(noise, sample.Length) : null;
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k], m = modelOutput[k];
            (double x0, double eps) = Prediction switch
            {
                PredictionType.Epsilon => ((x - Math.Sqrt(1 - a) * m) / Math.Sqrt(a), m),
                PredictionType.Sample => (m, (x - Math.Sqrt(a) * m) / Math.Sqrt(1 - a)),
                _ => (Math.Sqrt(a) * x - Math.Sqrt(1 - a) * m, Math.Sqrt(a) * m + Math.Sqrt(1 - a) * x),
            };
            double noised = Math.Sqrt(aS) * x0 + Math.Sqrt(1 - aS) * eps;
            sample[k] = (float)(z is null ? noised : Math.Sqrt(aPrev / aS) * noised + Math.Sqrt(1 - aPrev / aS) * z[k]);
        }
        _stepIndex = i + 1;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVariancePreserving(original, noise, AsIntTimestep(timestep), destination);
}
