namespace AsyncDiffusion.Schedulers;

/// <summary>diffusers' EulerDiscreteScheduler (Karras et al. Algorithm 2 without churn): deterministic.</summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    public EulerDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Euler)
    {
        Settings.Choice("interpolation_type", "linear");
        Settings.Choice("timestep_type", "discrete");
        Settings.Choice("final_sigmas_type", "zero", "sigma_min");
        Settings.RequireFalse("use_exponential_sigmas");
        Settings.RequireFalse("use_beta_sigmas");
    }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var timesteps = EulerFamilyTimesteps(steps);
        var sigmas = timesteps.Select(Table.InterpolateSigma).ToArray();
        if (Settings.Bool("use_karras_sigmas"))
        {
            double min = Settings.NullableNumber("sigma_min") ?? sigmas[^1];
            double max = Settings.NullableNumber("sigma_max") ?? sigmas[0];
            sigmas = TimestepSpacing.KarrasSigmas(min, max, steps);
            timesteps = sigmas.Select(s => (double)(float)Table.SigmaToTimestep(s)).ToArray();
        }
        float last = Settings.Choice("final_sigmas_type", "zero", "sigma_min") == "sigma_min" ? Table.Sigmas[0] : 0f;
        SigmaArray = sigmas.Select(s => (float)s).Append(last).ToArray();
        TimestepArray = timesteps;
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    public override float ModelInputDivisor(double timestep) => KarrasInputDivisor(timestep);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        double sigma = SigmaArray[i], next = SigmaArray[i + 1];
        for (int k = 0; k < sample.Length; k++)
        {
            double x = sample[k];
            double derivative = Prediction == PredictionType.Epsilon
                ? modelOutput[k]
                : (x - PredictOriginalAtSigma(modelOutput[k], x, sigma)) / sigma;
            sample[k] = (float)(x + derivative * (next - sigma));
        }
        StepIndex = i + 1;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVarianceExploding(original, noise, timestep, destination);
}
