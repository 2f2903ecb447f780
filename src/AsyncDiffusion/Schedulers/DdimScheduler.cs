namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' DDIMScheduler. The previous timestep is always t − N/n (integer division), even
/// where the list's next entry differs (linspace, trailing); eta &gt; 0 adds noise.
/// </summary>
public sealed class DdimScheduler : Scheduler, IEtaScheduler
{
    private readonly double _finalAlphaCumprod;

    public DdimScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Ddim)
    {
        Settings.RequireFalse("thresholding");
        _finalAlphaCumprod = VariancePreservingTimesteps.FinalAlphaCumprod(Settings, Table);
    }

    /// <summary>DDIM's eta: 0 is deterministic DDIM, 1 is DDPM-like.</summary>
    public double Eta { get; set; }

    protected override void ComputeTimesteps(int steps, double strength) =>
        TimestepArray = VariancePreservingTimesteps.Descending(Settings, Table.TrainTimesteps, steps);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int t = AsIntTimestep(timestep);
        int prev = t - Table.TrainTimesteps / NumInferenceSteps;
        double a = Table.AlphasCumprod[t];
        double aPrev = Table.AlphaCumprodAt(prev, _finalAlphaCumprod);
        double b = 1 - a;
        double variance = (1 - aPrev) / b * (1 - a / aPrev);
        double std = Eta * Math.Sqrt(variance);
        bool clip = Settings.Bool("clip_sample");
        double range = Settings.Number("clip_sample_range");

        float[]? z = Eta > 0 ? DrawNoise(noise, sample.Length) : null;
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k], m = modelOutput[k];
            double x0 = PredictOriginal(m, x, a);
            double eps = Prediction switch
            {
                PredictionType.Epsilon => m,
                PredictionType.VPrediction => Math.Sqrt(a) * m + Math.Sqrt(b) * x,
                _ => (x - Math.Sqrt(a) * x0) / Math.Sqrt(b),
            };
            if (clip) x0 = Math.Clamp(x0, -range, range);
            double direction = Math.Sqrt(1 - aPrev - std * std) * eps;
            double value = Math.Sqrt(aPrev) * x0 + direction;
            if (z is not null) value += std * z[k];
            sample[k] = (float)value;
        }
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVariancePreserving(original, noise, AsIntTimestep(timestep), destination);
}
