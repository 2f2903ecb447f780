namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>
/// Gathers activation statistics from a calibration copy of a graph: attach it as the
/// session's observer and every run adds the exposed tensors' values to their histograms.
/// </summary>
internal sealed class CalibrationCollector(IReadOnlyList<string> tensors) : ITensorObserver
{
    private readonly Dictionary<string, ActivationHistogram> _histograms =
        tensors.ToDictionary(t => t, _ => new ActivationHistogram(), StringComparer.Ordinal);
    private int _runs;

    public IReadOnlyList<string> Tensors => tensors;
    public IReadOnlyDictionary<string, ActivationHistogram> Histograms => _histograms;

    /// <summary>Runs observed (each run reports every tensor once).</summary>
    public int Runs => _runs;

    public void Observe(string tensor, ReadOnlySpan<float> values)
    {
        _histograms[tensor].Add(values);
        if (tensors.Count > 0 && tensor == tensors[0]) Interlocked.Increment(ref _runs);
    }
}
