namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' DEISMultistepScheduler ("deis" with the log-rho solver): model outputs are turned
/// into noise predictions and combined over the last one to three steps with coefficients that
/// integrate the Lagrange polynomial in log(rho), rho = sigma_t/alpha_t.
/// </summary>
public sealed class DeisMultistepScheduler : ExponentialIntegratorScheduler
{
    private int _lowerOrderNums;

    public DeisMultistepScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.DeisMultistep)
    {
        Settings.Choice("algorithm_type", "deis");
        Settings.Choice("solver_type", "logrho");
    }

    protected override void ResetState()
    {
        base.ResetState();
        _lowerOrderNums = 0;
    }

    // DEIS has no final_sigmas_type: a formula schedule repeats its last sigma, else the table's sigma at t = 0.
    protected override float FinalSigma(SigmaScheduleKind kind, float lastScheduleSigma) =>
        kind == SigmaScheduleKind.Interpolated ? Table.Sigmas[0] : lastScheduleSigma;

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        int count = TimestepArray.Length;
        bool lowerFinal = Settings.Bool("lower_order_final") && count < 15;
        var (alpha, sigma) = AlphaSigma(SigmaArray[i]);
        var x0 = PredictData(modelOutput, sample, SigmaArray[i]);
        var eps = new double[x0.Length];
        for (int k = 0; k < eps.Length; k++) eps[k] = (sample[k] - alpha * x0[k]) / sigma;
        PushHistory(eps);

        int order = SolverOrder == 1 || _lowerOrderNums < 1 || (lowerFinal && i == count - 1) ? 1
            : SolverOrder == 2 || _lowerOrderNums < 2 || (lowerFinal && i == count - 2) ? 2
            : 3;
        var (alphaT, sigmaT) = AlphaSigma(SigmaArray[i + 1]);
        double[] c;
        double sampleFactor;
        if (order == 1)
        {
            double h = Lambda(SigmaArray[i + 1]) - Lambda(SigmaArray[i]);
            sampleFactor = alphaT / alpha;
            c = [-sigmaT * (Math.Exp(h) - 1.0)];
        }
        else
        {
            // The log(rho) coefficients cancel heavily at order 3; they are evaluated in float32 as
            // diffusers evaluates them (0-dim float32 tensors), so the result carries the same rounding.
            float rhoT = Rho32(SigmaArray[i + 1]);
            var rho = Enumerable.Range(0, order).Select(back => Rho32(SigmaArray[i - back])).ToArray();
            sampleFactor = alphaT / alpha;
            c = order == 2
                ? [alphaT * (Second(rhoT, rho[0], rho[1]) - Second(rho[0], rho[0], rho[1])),
                   alphaT * (Second(rhoT, rho[1], rho[0]) - Second(rho[0], rho[1], rho[0]))]
                : [alphaT * (Third(rhoT, rho[0], rho[1], rho[2]) - Third(rho[0], rho[0], rho[1], rho[2])),
                   alphaT * (Third(rhoT, rho[1], rho[2], rho[0]) - Third(rho[0], rho[1], rho[2], rho[0])),
                   alphaT * (Third(rhoT, rho[2], rho[0], rho[1]) - Third(rho[0], rho[2], rho[0], rho[1]))];
        }
        for (int k = 0; k < sample.Length; k++)
        {
            double value = sampleFactor * sample[k];
            for (int back = 0; back < c.Length; back++) value += c[back] * HistoryAt(back)[k];
            sample[k] = (float)value;
        }
        if (_lowerOrderNums < SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
    }

    // rho = sigma_t / alpha_t with alpha_t = 1/sqrt(sigma² + 1), in float32.
    private static float Rho32(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return sigma * alpha / alpha;
    }

    // Antiderivatives of the Lagrange basis in log(rho) (diffusers' ind_fn), second and third order, in float32.
    private static float Second(float t, float b, float c) =>
        t * (-NumpyFloat32Log.Log(c) + NumpyFloat32Log.Log(t) - 1f) / (NumpyFloat32Log.Log(b) - NumpyFloat32Log.Log(c));

    private static float Third(float t, float b, float c, float d)
    {
        float lt = NumpyFloat32Log.Log(t), lc = NumpyFloat32Log.Log(c), ld = NumpyFloat32Log.Log(d), lb = NumpyFloat32Log.Log(b);
        float numerator = t * (lc * (ld - lt + 1f) - ld * lt + ld + lt * lt - 2f * lt + 2f);
        return numerator / ((lb - lc) * (lb - ld));
    }
}
