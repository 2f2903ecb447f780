namespace AsyncDiffusion.Schedulers;

/// <summary>
/// diffusers' PNDMScheduler: Runge-Kutta warm-up (unless <c>skip_prk_steps</c>, SD's default),
/// then linear multistep (PLMS) of orders 1 to 4. A call counter, not the timestep, drives the
/// branches; with skip_prk_steps the list repeats its second timestep and call 1 redoes call 0's
/// step with the averaged output. img2img starts the counter at 0 mid-list, as diffusers does.
/// </summary>
public sealed class PndmScheduler : Scheduler
{
    private const int PndmOrder = 4;
    private readonly double _finalAlphaCumprod;
    private readonly bool _skipPrk;
    private List<float[]> _ets = new();
    private int[] _prkTimesteps = Array.Empty<int>();
    private int _counter;
    private double[]? _curModelOutput;
    private float[]? _curSample;

    public PndmScheduler(SchedulerConfig config) : base(config, SchedulerDefaults.Pndm)
    {
        _finalAlphaCumprod = VariancePreservingTimesteps.FinalAlphaCumprod(Settings, Table);
        _skipPrk = Settings.Bool("skip_prk_steps");
    }

    protected override void ResetState()
    {
        _ets = new();
        _counter = 0;
        _curModelOutput = null;
        _curSample = null;
    }

    protected override void ComputeTimesteps(int steps, double strength)
    {
        // Ascending base list.
        var asc = VariancePreservingTimesteps.Descending(Settings, Table.TrainTimesteps, steps).Reverse().Select(AsIntTimestep).ToArray();
        if (_skipPrk)
        {
            // [t0 .. t(n-2), t(n-2), t(n-1)] reversed: the second-highest timestep appears twice.
            var plms = asc[..^1].Concat(asc.Length >= 2 ? [asc[^2]] : []).Append(asc[^1]).Reverse();
            _prkTimesteps = Array.Empty<int>();
            TimestepArray = plms.Select(t => (double)t).ToArray();
        }
        else
        {
            int half = Table.TrainTimesteps / steps / 2;
            var lastFour = asc.Skip(Math.Max(0, asc.Length - PndmOrder)).ToArray();
            var prk = new List<int>();
            foreach (var t in lastFour) { prk.Add(t); prk.Add(t + half); }       // repeat(2) + tile([0, half])
            var trimmed = prk.Take(prk.Count - 1).SelectMany(t => new[] { t, t }).ToList();  // [:-1].repeat(2)
            var inner = trimmed.Count >= 2 ? trimmed.Skip(1).Take(trimmed.Count - 2) : [];    // [1:-1]
            _prkTimesteps = inner.Reverse().ToArray();
            var plms = asc.Take(Math.Max(0, asc.Length - 3)).Reverse();
            TimestepArray = _prkTimesteps.Concat(plms).Select(t => (double)t).ToArray();
        }
    }

    public override void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null)
    {
        if (_counter < _prkTimesteps.Length && !_skipPrk) StepPrk(modelOutput, AsIntTimestep(timestep), sample);
        else StepPlms(modelOutput, AsIntTimestep(timestep), sample);
    }

    private void StepPrk(ReadOnlySpan<float> modelOutput, int timestep, Span<float> sample)
    {
        int diffToPrev = _counter % 2 == 1 ? 0 : Table.TrainTimesteps / NumInferenceSteps / 2;
        int prev = timestep - diffToPrev;
        timestep = _prkTimesteps[_counter / 4 * 4];

        var output = new double[sample.Length];
        _curModelOutput ??= new double[sample.Length];
        switch (_counter % 4)
        {
            case 0:
                for (int k = 0; k < output.Length; k++) { _curModelOutput[k] += modelOutput[k] / 6.0; output[k] = modelOutput[k]; }
                _ets.Add(modelOutput.ToArray());
                _curSample = sample.ToArray();
                break;
            case 1:
            case 2:
                for (int k = 0; k < output.Length; k++) { _curModelOutput[k] += modelOutput[k] / 3.0; output[k] = modelOutput[k]; }
                break;
            default:
                for (int k = 0; k < output.Length; k++) output[k] = _curModelOutput[k] + modelOutput[k] / 6.0;
                _curModelOutput = new double[sample.Length];
                break;
        }
        var from = _curSample ?? sample.ToArray();
        PreviousSample(from, timestep, prev, output, sample);
        _counter++;
    }

    private void StepPlms(ReadOnlySpan<float> modelOutput, int timestep, Span<float> sample)
    {
        if (!_skipPrk && _ets.Count < 3)
            throw new InvalidOperationException($"{ClassName} can only run PLMS steps after 3 Runge-Kutta warm-up steps.");
        int ratio = Table.TrainTimesteps / NumInferenceSteps;
        int prev = timestep - ratio;
        if (_counter != 1)
        {
            if (_ets.Count > 3) _ets.RemoveRange(0, _ets.Count - 3);
            _ets.Add(modelOutput.ToArray());
        }
        else
        {
            prev = timestep;
            timestep += ratio;
        }

        var output = new double[sample.Length];
        float[] from = sample.ToArray();
        int n = _ets.Count;
        for (int k = 0; k < output.Length; k++)
        {
            output[k] = n switch
            {
                1 when _counter == 0 => modelOutput[k],
                1 when _counter == 1 => (modelOutput[k] + (double)_ets[^1][k]) / 2,
                2 => (3.0 * _ets[^1][k] - _ets[^2][k]) / 2,
                3 => (23.0 * _ets[^1][k] - 16.0 * _ets[^2][k] + 5.0 * _ets[^3][k]) / 12,
                _ => (1.0 / 24) * (55.0 * _ets[^1][k] - 59.0 * _ets[^2][k] + 37.0 * _ets[^3][k] - 9.0 * _ets[^4][k]),
            };
        }
        if (n == 1 && _counter == 0) _curSample = from;
        else if (n == 1 && _counter == 1)
        {
            from = _curSample!;
            _curSample = null;
        }
        PreviousSample(from, timestep, prev, output, sample);
        _counter++;
    }

    // PNDM formula (9), with v-prediction converted to epsilon on the sample being stepped.
    private void PreviousSample(float[] from, int timestep, int prev, double[] output, Span<float> destination)
    {
        double a = Table.AlphasCumprod[timestep];
        double aPrev = Table.AlphaCumprodAt(prev, _finalAlphaCumprod);
        double b = 1 - a, bPrev = 1 - aPrev;
        double sampleCoefficient = Math.Sqrt(aPrev / a);
        double denominator = a * Math.Sqrt(bPrev) + Math.Sqrt(a * b * aPrev);
        for (int k = 0; k < from.Length; k++)
        {
            double e = Prediction == PredictionType.VPrediction ? Math.Sqrt(a) * output[k] + Math.Sqrt(b) * from[k] : output[k];
            destination[k] = (float)(sampleCoefficient * from[k] - (aPrev - a) * e / denominator);
        }
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVariancePreserving(original, noise, AsIntTimestep(timestep), destination);
}
