namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' KDPM2AncestralDiscreteScheduler (DPM2 a): DPM2 aimed at the ancestral sigma_down,
/// with fresh noise of sigma_up added on each second call. The last step is one Euler call to
/// sigma 0, without noise.
/// </summary>
public sealed class KDpm2AncestralDiscreteScheduler : KDpm2FamilyScheduler
{
    public KDpm2AncestralDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.KDpm2Ancestral) { }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var (timesteps, sigmas) = BaseSchedule(steps);
        int n = sigmas.Length;
        var up = new float[n];
        var down = new float[n];
        var interpol = new float[n];
        for (int i = 0; i < n; i++)
        {
            float s = sigmas[i], next = i + 1 < n ? sigmas[i + 1] : 0f;
            up[i] = MathF.Sqrt(next * next * (s * s - next * next) / (s * s));
            down[i] = i == n - 1 ? 0f : MathF.Sqrt(next * next - up[i] * up[i]);
            interpol[i] = i >= n - 2 ? 0f : GeometricMean(s, down[i]);
        }
        SigmaArray = RepeatInterior(sigmas, n);
        SigmasInterpolArray = RepeatInterior(interpol, n);
        SigmasUpArray = RepeatInterior(up, n);
        SigmasDownArray = RepeatInterior(down, n);

        var t = new List<double> { timesteps[0] };
        for (int i = 1; i < timesteps.Length; i++) { t.Add(TimestepOf(interpol[i - 1])); t.Add(timesteps[i]); }
        TimestepArray = t.ToArray();
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    public override float ModelInputDivisor(double timestep)
    {
        int i = CurrentIndex(timestep);
        return InputDivisor(InFirstStage ? SigmaArray[i] : SigmasInterpolArray[i - 1]);
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        if (InFirstStage)
        {
            double sigma = SigmaArray[i], interpol = SigmasInterpolArray[i];
            StoredSample = sample.ToArray();
            for (int k = 0; k < sample.Length; k++)
            {
                double derivative = (sample[k] - PredictOriginalAtSigma(modelOutput[k], sample[k], sigma)) / sigma;
                sample[k] = (float)(sample[k] + derivative * (interpol - sigma));
            }
        }
        else
        {
            double sigma = SigmaArray[i - 1], interpol = SigmasInterpolArray[i - 1];
            double up = SigmasUpArray[i - 1], down = SigmasDownArray[i - 1];
            var start = StoredSample!;
            var z = DrawNoise(noise, sample.Length);
            for (int k = 0; k < sample.Length; k++)
            {
                double derivative = (sample[k] - PredictOriginalAtSigma(modelOutput[k], sample[k], interpol)) / interpol;
                sample[k] = (float)(start[k] + derivative * (down - sigma) + z[k] * up);
            }
            StoredSample = null;
        }
        StepIndex = i + 1;
    }
}
