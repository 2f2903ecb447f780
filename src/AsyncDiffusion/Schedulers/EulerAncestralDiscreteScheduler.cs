namespace AsyncDiffusion.Schedulers;

/// <summary>diffusers' EulerAncestralDiscreteScheduler ("Euler a"): an Euler step to sigma_down plus fresh noise of sigma_up, every step.</summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaScheduler
{
    public EulerAncestralDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.EulerAncestral) { }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        TimestepArray = EulerFamilyTimesteps(steps);
        SigmaArray = TimestepArray.Select(t => (float)Table.InterpolateSigma(t)).Append(0f).ToArray();
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    public override float ModelInputDivisor(double timestep) => KarrasInputDivisor(timestep);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        double from = SigmaArray[i], to = SigmaArray[i + 1];
        double up = Math.Sqrt(to * to * (from * from - to * to) / (from * from));
        double down = Math.Sqrt(to * to - up * up);

        // Noise is drawn on every step, the last included (sigma_up = 0 there), to keep the generator in step with diffusers.
        var z = DrawNoise(noise, sample.Length);
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k];
            double x0 = PredictOriginalAtSigma(modelOutput[k], x, from);
            double derivative = (x - x0) / from;
            sample[k] = (float)(x + derivative * (down - from) + z[k] * up);
        }
        StepIndex = i + 1;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVarianceExploding(original, noise, timestep, destination);
}
