namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' KDPM2DiscreteScheduler (DPM2, Karras et al. Algorithm 2's DPM-Solver-2 variant): a
/// first call steps to the geometric mean of this sigma and the next, a second call there gives
/// the derivative that steps the stored sample to the next sigma. The last step is one Euler call
/// to sigma 0.
/// </summary>
public sealed class KDpm2DiscreteScheduler : KDpm2FamilyScheduler
{
    public KDpm2DiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.KDpm2) { }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var (timesteps, sigmas) = BaseSchedule(steps);
        int n = sigmas.Length;
        // Element i sits between sigma i and sigma i − 1 (rolled): NaN for i = 0, 0 for the final 0.
        var interpol = new float[n];
        for (int i = 0; i < n; i++) interpol[i] = GeometricMean(sigmas[i], sigmas[(i - 1 + n) % n]);
        SigmaArray = RepeatInterior(sigmas, n);
        SigmasInterpolArray = RepeatInterior(interpol, n);

        var t = new List<double> { timesteps[0] };
        for (int i = 1; i < timesteps.Length; i++) { t.Add(TimestepOf(interpol[i])); t.Add(timesteps[i]); }
        TimestepArray = t.ToArray();
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    public override float ModelInputDivisor(double timestep)
    {
        int i = CurrentIndex(timestep);
        return InputDivisor(InFirstStage ? SigmaArray[i] : SigmasInterpolArray[i]);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        if (InFirstStage)
        {
            double sigma = SigmaArray[i], interpol = SigmasInterpolArray[i + 1];
            StoredSample = sample.ToArray();
            for (int k = 0; k < sample.Length; k++)
            {
                double derivative = (sample[k] - PredictOriginalAtSigma(modelOutput[k], sample[k], sigma)) / sigma;
                sample[k] = (float)(sample[k] + derivative * (interpol - sigma));
            }
        }
        else
        {
            double sigma = SigmaArray[i - 1], interpol = SigmasInterpolArray[i], next = SigmaArray[i];
            var start = StoredSample!;
            for (int k = 0; k < sample.Length; k++)
            {
                double derivative = (sample[k] - PredictOriginalAtSigma(modelOutput[k], sample[k], interpol)) / interpol;
                sample[k] = (float)(start[k] + derivative * (next - sigma));
            }
            StoredSample = null;
        }
        StepIndex = i + 1;
    }
}
