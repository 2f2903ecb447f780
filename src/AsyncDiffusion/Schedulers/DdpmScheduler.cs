namespace AsyncDiffusion.Schedulers;

/// <summary>diffusers' DDPMScheduler: the previous timestep is the list's next entry (−1 at the end); noise is added whenever t &gt; 0.</summary>
public sealed class DdpmScheduler : Scheduler
{
    private readonly string _varianceType;

    public DdpmScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Ddpm)
    {
        Settings.RequireFalse("thresholding");
        _varianceType = Settings.Choice("variance_type", "fixed_small", "fixed_small_log", "fixed_large", null) ?? "fixed_small";
    }

    protected override void ComputeTimesteps(int steps, double strength) =>
        TimestepArray = VariancePreservingTimesteps.Descending(Settings, Table.TrainTimesteps, steps);

    private int PreviousTimestep(int t)
    {
        int index = Array.IndexOf(TimestepArray, (double)t);
        if (index < 0) throw new AsyncDiffusionException($"Timestep {t} is not in {ClassName}'s schedule.");
        return index == TimestepArray.Length - 1 ? -1 : AsIntTimestep(TimestepArray[index + 1]);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int t = AsIntTimestep(timestep);
        int prev = PreviousTimestep(t);
        double a = Table.AlphasCumprod[t];
        double aPrev = Table.AlphaCumprodAt(prev, 1.0);
        double b = 1 - a, bPrev = 1 - aPrev;
        double currentAlpha = a / aPrev, currentBeta = 1 - currentAlpha;
        double x0Coefficient = Math.Sqrt(aPrev) * currentBeta / b;
        double sampleCoefficient = Math.Sqrt(currentAlpha) * bPrev / b;
        bool clip = Settings.Bool("clip_sample");
        double range = Settings.Number("clip_sample_range");

        double std = 0;
        float[]? z = null;
        if (t > 0)
        {
            double variance = Math.Max(bPrev / b * currentBeta, 1e-20);
            std = _varianceType switch
            {
                "fixed_small_log" => Math.Exp(0.5 * Math.Log(variance)),
                "fixed_large" => Math.Sqrt(currentBeta),
                _ => Math.Sqrt(variance),
            };
            z = DrawNoise(noise, sample.Length);
        }
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k];
            double x0 = PredictOriginal(modelOutput[k], x, a);
            if (clip) x0 = Math.Clamp(x0, -range, range);
            double value = x0Coefficient * x0 + sampleCoefficient * x;
            if (z is not null) value += std * z[k];
            sample[k] = (float)value;
        }
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVariancePreserving(original, noise, AsIntTimestep(timestep), destination);
}
