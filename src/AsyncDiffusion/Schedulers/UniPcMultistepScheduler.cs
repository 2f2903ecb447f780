namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' UniPCMultistepScheduler (data prediction, B(h) = h for "bh1" or e^h − 1 for
/// "bh2"): a predictor (UniP) of the solver order, and from the second step on a corrector
/// (UniC) that uses this step's model output to correct the previous step's result before the
/// predictor steps from it.
/// </summary>
public sealed class UniPcMultistepScheduler : ExponentialIntegratorScheduler
{
    private readonly bool _bh1;
    private float[]? _lastSample;
    private int _lastOrder;
    private int _lowerOrderNums;

    public UniPcMultistepScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.UniPcMultistep)
    {
        _bh1 = Settings.Choice("solver_type", "bh1", "bh2") == "bh1";
        string final = Settings.Choice("final_sigmas_type", "zero", "sigma_min")!;
        if (!Settings.Bool("predict_x0"))
            throw Settings.Invalid("predict_x0", "is false; AsyncDiffusion's UniPC implements the data-prediction form only (predict_x0 = true)");
        if (Settings.NumberArray("disable_corrector") is { Length: > 0 })
            throw Settings.Invalid("disable_corrector", "lists steps; AsyncDiffusion's UniPC runs the corrector on every step (expected [])");
        if (_bh1 && final == "zero")
            throw Settings.Invalid("final_sigmas_type", "is \"zero\" with solver_type \"bh1\", whose last step is NaN in diffusers (B(h) = h is infinite at sigma 0); use final_sigmas_type \"sigma_min\" or solver_type \"bh2\"");
    }

    protected override void ResetState()
    {
        base.ResetState();
        _lastSample = null;
        _lastOrder = 0;
        _lowerOrderNums = 0;
    }

    protected override (double Min, double Max) ConvertedSigmaRange() =>
        (Settings.NullableNumber("sigma_min") ?? Table.Sigmas[0], Settings.NullableNumber("sigma_max") ?? Table.Sigmas[^1]);

    // sigma_min repeats a formula schedule's own last sigma, else the table's sigma at t = 0.
    protected override float FinalSigma(SigmaScheduleKind kind, float lastScheduleSigma) =>
        kind != SigmaScheduleKind.Interpolated && ZeroOrTableMinimum() != 0f ? lastScheduleSigma : ZeroOrTableMinimum();

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        var converted = PredictData(modelOutput, sample, SigmaArray[i]);
        if (i > 0 && _lastSample is not null) Correct(i, converted, sample);
        PushHistory(converted);

        int order = Settings.Bool("lower_order_final") ? Math.Min(SolverOrder, TimestepArray.Length - i) : SolverOrder;
        _lastOrder = Math.Min(order, _lowerOrderNums + 1);
        _lastSample = sample.ToArray();
        Predict(i, _lastOrder, sample);
        if (_lowerOrderNums < SolverOrder) _lowerOrderNums++;
        StepIndex = i + 1;
    }

    // UniC: redo the step from _lastSample (sigma i−1 → i) with this step's output in the fit.
    private void Correct(int i, double[] current, Span<float> sample)
    {
        int order = _lastOrder;
        var (alphaT, sigmaT) = AlphaSigma(SigmaArray[i]);
        double lambda0 = Lambda(SigmaArray[i - 1]);
        double h = Lambda(SigmaArray[i]) - lambda0;
        var ratios = new double[order];
        for (int r = 1; r < order; r++) ratios[r - 1] = (Lambda(SigmaArray[i - (r + 1)]) - lambda0) / h;
        ratios[^1] = 1;
        var (hPhi1, bh, b) = Coefficients(h, order);
        double[] rhos = order == 1 ? [0.5] : Solve(ratios, b, order);

        var m0 = HistoryAt(0);
        var x = _lastSample!;
        double sigmaS0 = AlphaSigma(SigmaArray[i - 1]).Sigma;
        for (int k = 0; k < sample.Length; k++)
        {
            double correction = 0;
            for (int r = 1; r < order; r++) correction += rhos[r - 1] * (HistoryAt(r)[k] - m0[k]) / ratios[r - 1];
            double baseline = sigmaT / sigmaS0 * x[k] - alphaT * hPhi1 * m0[k];
            sample[k] = (float)(baseline - alphaT * bh * (correction + rhos[^1] * (current[k] - m0[k])));
        }
    }

    // UniP: step sigma i → i+1 from the (corrected) sample with the stored outputs.
    private void Predict(int i, int order, Span<float> sample)
    {
        var (alphaT, sigmaT) = AlphaSigma(SigmaArray[i + 1]);
        double lambda0 = Lambda(SigmaArray[i]);
        double h = Lambda(SigmaArray[i + 1]) - lambda0;
        var ratios = new double[order];
        for (int r = 1; r < order; r++) ratios[r - 1] = (Lambda(SigmaArray[i - r]) - lambda0) / h;
        ratios[^1] = 1;
        var (hPhi1, bh, b) = Coefficients(h, order);
        double[] rhos = order switch { 1 => [], 2 => [0.5], _ => Solve(ratios, b, order - 1) };

        var m0 = HistoryAt(0);
        double sigmaS0 = AlphaSigma(SigmaArray[i]).Sigma;
        for (int k = 0; k < sample.Length; k++)
        {
            double prediction = 0;
            for (int r = 1; r < order; r++) prediction += rhos[r - 1] * (HistoryAt(r)[k] - m0[k]) / ratios[r - 1];
            double baseline = sigmaT / sigmaS0 * sample[k] - alphaT * hPhi1 * m0[k];
            sample[k] = (float)(baseline - alphaT * bh * prediction);
        }
    }

    // h·phi_1(h) = e^{hh} − 1 with hh = −h, B(h), and the right-hand side b_i = h·phi_{i+1}·i!/B(h).
    private (double HPhi1, double Bh, double[] B) Coefficients(double h, int order)
    {
        double hh = -h;
        // expm1: the series keeps its accuracy where e^hh − 1 would cancel.
        double hPhi1 = Math.Abs(hh) < 1e-5 ? hh + hh * hh / 2 + hh * hh * hh / 6 : Math.Exp(hh) - 1.0;
        double bh = _bh1 ? hh : hPhi1;
        double hPhiK = hPhi1 / hh - 1;
        double factorial = 1;
        var b = new double[order];
        for (int n = 1; n <= order; n++)
        {
            b[n - 1] = hPhiK * factorial / bh;
            factorial *= n + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }
        return (hPhi1, bh, b);
    }

    // Solves R·rho = b for the leading size×size block of R[p][k] = ratios[k]^p (Gaussian elimination, partial pivoting).
    private static double[] Solve(double[] ratios, double[] b, int size)
    {
        var m = new double[size, size + 1];
        for (int p = 0; p < size; p++)
        {
            for (int k = 0; k < size; k++) m[p, k] = Math.Pow(ratios[k], p);
            m[p, size] = b[p];
        }
        for (int col = 0; col < size; col++)
        {
            int pivot = col;
            for (int row = col + 1; row < size; row++) if (Math.Abs(m[row, col]) > Math.Abs(m[pivot, col])) pivot = row;
            for (int k = 0; k <= size; k++) (m[col, k], m[pivot, k]) = (m[pivot, k], m[col, k]);
            for (int row = col + 1; row < size; row++)
            {
                double f = m[row, col] / m[col, col];
                for (int k = col; k <= size; k++) m[row, k] -= f * m[col, k];
            }
        }
        var x = new double[size];
        for (int row = size - 1; row >= 0; row--)
        {
            double sum = m[row, size];
            for (int k = row + 1; k < size; k++) sum -= m[row, k] * x[k];
            x[row] = sum / m[row, row];
        }
        return x;
    }
}
