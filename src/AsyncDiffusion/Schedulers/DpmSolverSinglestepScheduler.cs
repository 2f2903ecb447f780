namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' DPMSolverSinglestepScheduler (DPM++ 2S/3S, and with <c>algorithm_type</c>
/// "sde-dpmsolver++" the SDE variant): the schedule runs in groups of orders ([1, 2] or
/// [1, 2, 3]); the first call of a group stores the sample, and every call of the group steps
/// from that sample with all the model outputs the group has gathered. diffusers models each
/// call as one step of an n-entry timestep list, so one UNet call per entry is all a caller does.
/// </summary>
public sealed class DpmSolverSinglestepScheduler : ExponentialIntegratorScheduler
{
    private readonly bool _sde;
    private readonly bool _heun;
    private bool _lowerOrderFinal;
    private float[]? _groupSample;
    private int[] _orderList = [];

    public DpmSolverSinglestepScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.DpmSolverSinglestep)
    {
        _sde = Settings.Choice("algorithm_type", "dpmsolver++", "sde-dpmsolver++") == "sde-dpmsolver++";
        _heun = Settings.Choice("solver_type", "midpoint", "heun") == "heun";
        Settings.Choice("final_sigmas_type", "zero", "sigma_min");
        Settings.Choice("variance_type", [null]);
        _lowerOrderFinal = Settings.Bool("lower_order_final");
    }

    /// <summary>The solver order planned for each step (diffusers' <c>order_list</c>).</summary>
    public IReadOnlyList<int> OrderList => _orderList;

    protected override void ResetState()
    {
        base.ResetState();
        _groupSample = null;
    }

    // Singlestep has no timestep_spacing: always linspace over the (clipped) table.
    protected override double[] SpacedTimesteps(int steps) => SpacedLinspace(ClippedLastTimestep(), steps);

    protected override float FinalSigma(SigmaScheduleKind kind, float lastScheduleSigma) => ZeroOrTableMinimum();

    protected override void ComputeTimesteps(int steps, double strength)
    {
        base.ComputeTimesteps(steps, strength);
        // diffusers switches lower_order_final on for good (register_to_config) when the step
        // count is not a multiple of the order or the last sigma is 0.
        if (!_lowerOrderFinal && (steps % SolverOrder != 0 || ZeroOrTableMinimum() == 0f)) _lowerOrderFinal = true;
        _orderList = OrderPlan(steps);
    }

    private int[] OrderPlan(int steps)
    {
        int order = SolverOrder;
        var orders = new List<int>();
        void Groups(int count) { for (int g = 0; g < count; g++) for (int o = 1; o <= order; o++) orders.Add(o); }
        if (_lowerOrderFinal)
        {
            if (order == 3)
            {
                if (steps % 3 == 0) { Groups(steps / 3 - 1); orders.AddRange([1, 2, 1]); }
                else if (steps % 3 == 1) { Groups(steps / 3); orders.Add(1); }
                else { Groups(steps / 3); orders.AddRange([1, 2]); }
            }
            else if (order == 2)
            {
                if (steps % 2 == 0) { Groups(steps / 2 - 1); orders.AddRange([1, 1]); }
                else { Groups(steps / 2); orders.Add(1); }
            }
            else Groups(steps);
        }
        else Groups(steps / order);
        if (ZeroOrTableMinimum() == 0f) orders[^1] = 1;
        return orders.ToArray();
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        int i = CurrentIndex(timestep);
        PushHistory(PredictData(modelOutput, sample, SigmaArray[i]));
        var z = _sde ? DrawNoise(noise, sample.Length) : null;
        int order = _orderList[i];
        while (History[History.Length - order] is null) order--;
        if (order == 1) _groupSample = sample.ToArray();
        Update(i, order, _groupSample!, sample, z);
        StepIndex = i + 1;
    }

    private void Update(int i, int order, float[] x, Span<float> result, float[]? z)
    {
        double sigmaNext = SigmaArray[i + 1];
        var (alphaT, sigmaT) = AlphaSigma(sigmaNext);
        double lambdaT = Lambda(sigmaNext);
        // The group started `order − 1` calls ago, at sigma s_{order-1}.
        double sigmaStart = SigmaArray[i - (order - 1)];
        double h = lambdaT - Lambda(sigmaStart);
        double ratio = sigmaT / AlphaSigma(sigmaStart).Sigma;

        double a, b0, c = 0;
        double e2 = Math.Exp(-2.0 * h), em1 = Math.Exp(-h) - 1.0;
        if (_sde)
        {
            a = ratio * Math.Exp(-h);
            b0 = alphaT * (1 - e2);
            c = sigmaT * Math.Sqrt(1.0 - e2);
        }
        else
        {
            a = ratio;
            b0 = -alphaT * em1;
        }
        // Coefficients of D1 and D2 for the order, solver type and algorithm.
        double firstCoefficient = _sde ? alphaT * ((1.0 - e2) / (-2.0 * h) + 1.0) : alphaT * (em1 / h + 1.0);
        double secondCoefficient = _sde ? alphaT * ((1.0 - e2 - 2.0 * h) / Math.Pow(-2.0 * h, 2) - 0.5) : -alphaT * ((em1 + h) / (h * h) - 0.5);
        double midpointHalf = _sde ? 0.5 * alphaT * (1 - e2) : -0.5 * alphaT * em1;

        var m0 = HistoryAt(0);
        if (order == 1)
        {
            for (int k = 0; k < result.Length; k++)
                result[k] = (float)(a * x[k] + b0 * m0[k] + (z is null ? 0 : c * z[k]));
            return;
        }
        if (order == 2)
        {
            var m1 = HistoryAt(1);
            double r0 = (Lambda(SigmaArray[i]) - Lambda(SigmaArray[i - 1])) / h;
            double b1 = _heun ? firstCoefficient : midpointHalf;
            for (int k = 0; k < result.Length; k++)
            {
                double d1 = 1.0 / r0 * (m0[k] - m1[k]);
                result[k] = (float)(a * x[k] + b0 * m1[k] + b1 * d1 + (z is null ? 0 : c * z[k]));
            }
            return;
        }
        {
            var m1 = HistoryAt(1);
            var m2 = HistoryAt(2);
            double lambda2 = Lambda(SigmaArray[i - 2]);
            double r0 = (Lambda(SigmaArray[i]) - lambda2) / h, r1 = (Lambda(SigmaArray[i - 1]) - lambda2) / h;
            for (int k = 0; k < result.Length; k++)
            {
                double d10 = 1.0 / r1 * (m1[k] - m2[k]), d11 = 1.0 / r0 * (m0[k] - m2[k]);
                double value = a * x[k] + b0 * m2[k];
                if (_heun)
                {
                    double d1 = (r0 * d10 - r1 * d11) / (r0 - r1), d2 = 2.0 * (d11 - d10) / (r0 - r1);
                    value += firstCoefficient * d1 + secondCoefficient * d2;
                }
                else value += firstCoefficient * d11;
                result[k] = (float)(value + (z is null ? 0 : c * z[k]));
            }
        }
    }
}
