namespace AsyncDiffusion.Schedulers;

/// <summary>diffusers' EulerDiscreteScheduler (Karras et al. Algorithm 2 without churn): deterministic.</summary>
public sealed class EulerDiscreteScheduler : SigmaScheduler
{
    public EulerDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Euler)
    {
        Settings.Choice("interpolation_type", "linear");
        _continuous = Settings.Choice("timestep_type", "discrete", "continuous") == "continuous" && Prediction == PredictionType.VPrediction;
        Settings.Choice("final_sigmas_type", "zero", "sigma_min");
        Settings.SigmaSchedule();
    }

    // timestep_type "continuous" with v-prediction hands the model 0.25·ln(sigma) instead of t.
    private readonly bool _continuous;

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var (timesteps, sigmas) = EulerFamilySchedule(steps, Settings.NullableNumber("sigma_min"), Settings.NullableNumber("sigma_max"));
        float last = Settings.Choice("final_sigmas_type", "zero", "sigma_min") == "sigma_min" ? Table.Sigmas[0] : 0f;
        SigmaArray = sigmas.Select(s => (float)s).Append(last).ToArray();
        TimestepArray = _continuous
            ? SigmaArray[..^1].Select(s => (double)(0.25f * MathF.Log(s))).ToArray()
            : timesteps.Select(t => (double)(float)t).ToArray();
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
