namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' HeunDiscreteScheduler (Karras et al. Algorithm 2 without churn): an Euler step to
/// the next sigma, then a second model call there, and the step redone from the stored sample
/// with the average of both derivatives. The last step is a single Euler call to sigma 0.
/// </summary>
public sealed class HeunDiscreteScheduler : SecondOrderSigmaScheduler
{
    private double[]? _firstDerivative;
    private double _dt;

    public HeunDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Heun) { }

    protected override void ResetState()
    {
        base.ResetState();
        _firstDerivative = null;
    }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var (timesteps, sigmas) = EulerFamilySchedule(steps);
        var withFinal = sigmas.Select(s => (float)s).Append(0f).ToArray();
        SigmaArray = RepeatInterior(withFinal, withFinal.Length - 1);
        var t = new List<double> { (float)timesteps[0] };
        foreach (var x in timesteps.Skip(1)) { t.Add((float)x); t.Add((float)x); }
        TimestepArray = t.ToArray();
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    // Both calls scale by the sigma they are evaluated at: sigmas[step_index].
    public override float ModelInputDivisor(double timestep) => KarrasInputDivisor(timestep);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        bool clip = Settings.Bool("clip_sample");
        double range = Settings.Number("clip_sample_range");
        if (InFirstStage)
        {
            double sigma = SigmaArray[i], next = SigmaArray[i + 1];
            _dt = next - sigma;
            _firstDerivative = new double[sample.Length];
            StoredSample = sample.ToArray();
            for (int k = 0; k < sample.Length; k++)
            {
                double x0 = PredictOriginalAtSigma(modelOutput[k], sample[k], sigma);
                if (clip) x0 = Math.Clamp(x0, -range, range);
                _firstDerivative[k] = (sample[k] - x0) / sigma;
                sample[k] = (float)(sample[k] + _firstDerivative[k] * _dt);
            }
        }
        else
        {
            double next = SigmaArray[i];
            var start = StoredSample!;
            for (int k = 0; k < sample.Length; k++)
            {
                double x0 = PredictOriginalAtSigma(modelOutput[k], sample[k], next);
                if (clip) x0 = Math.Clamp(x0, -range, range);
                double derivative = ((sample[k] - x0) / next + _firstDerivative![k]) / 2;
                sample[k] = (float)(start[k] + derivative * _dt);
            }
            StoredSample = null;
            _firstDerivative = null;
        }
        StepIndex = i + 1;
    }
}
