namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' LMSDiscreteScheduler: linear multistep over up to four stored derivatives, with
/// coefficients that integrate the Lagrange basis between consecutive sigmas (computed exactly by
/// Gauss-Legendre quadrature; the integrand is a polynomial of degree ≤ 3).
/// </summary>
public sealed class LmsDiscreteScheduler : SigmaScheduler
{
    private const int MaxOrder = 4;
    private List<float[]> _derivatives = new();

    public LmsDiscreteScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Lms)
    {
        Settings.SigmaSchedule();
    }

    protected override void ResetState()
    {
        base.ResetState();
        _derivatives = new();
    }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        var (timesteps, sigmas) = EulerFamilySchedule(steps);
        SigmaArray = sigmas.Select(s => (float)s).Append(0f).ToArray();
        TimestepArray = timesteps.Select(t => (double)(float)t).ToArray();
        InitNoiseSigma = EulerFamilyInitNoiseSigma();
    }

    public override float ModelInputDivisor(double timestep) => KarrasInputDivisor(timestep);

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        double sigma = SigmaArray[i];
        var derivative = new float[sample.Length];
        for (int k = 0; k < sample.Length; k++)
            derivative[k] = (float)((sample[k] - PredictOriginalAtSigma(modelOutput[k], sample[k], sigma)) / sigma);
        _derivatives.Add(derivative);
        if (_derivatives.Count > MaxOrder) _derivatives.RemoveAt(0);

        // The order follows the step index, not the history: an img2img start computes
        // higher-order coefficients and pairs only the first with the one derivative it has.
        int order = Math.Min(i + 1, MaxOrder);
        int terms = Math.Min(order, _derivatives.Count);
        var coefficients = new double[terms];
        for (int c = 0; c < terms; c++) coefficients[c] = Coefficient(order, i, c);

        for (int k = 0; k < sample.Length; k++)
        {
            double sum = 0;
            for (int c = 0; c < terms; c++) sum += coefficients[c] * _derivatives[_derivatives.Count - 1 - c][k];
            sample[k] = (float)(sample[k] + sum);
        }
        StepIndex = i + 1;
    }

    private double Coefficient(int order, int t, int current)
    {
        double Basis(double tau)
        {
            double prod = 1.0;
            for (int k = 0; k < order; k++)
            {
                if (k == current) continue;
                prod *= (tau - SigmaArray[t - k]) / (SigmaArray[t - current] - SigmaArray[t - k]);
            }
            return prod;
        }
        return GaussLegendre4(Basis, SigmaArray[t], SigmaArray[t + 1]);
    }

    private static double GaussLegendre4(Func<double, double> f, double a, double b)
    {
        ReadOnlySpan<double> x = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
        ReadOnlySpan<double> w = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];
        double half = (b - a) / 2, mid = (a + b) / 2, sum = 0;
        for (int i = 0; i < 4; i++) sum += w[i] * f(mid + half * x[i]);
        return sum * half;
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVarianceExploding(original, noise, timestep, destination);
}
