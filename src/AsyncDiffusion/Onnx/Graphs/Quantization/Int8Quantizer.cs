using AsyncDiffusion.Onnx.Graphs.Rewriting;

namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>
/// Quantizes one ONNX model to int8 in three steps: <see cref="LayerSelection.Plan"/> decides
/// what becomes int8; a calibration copy of the graph exposes the tensors static quantization
/// needs, and the caller runs it on representative inputs with a <see cref="CalibrationCollector"/>
/// attached; <see cref="Apply"/> rewrites the graph with the chosen ranges and returns the record
/// to store beside it.
/// </summary>
internal static class Int8Quantizer
{
    /// <summary>A calibration copy of a small graph, in memory (the graph itself is unchanged).</summary>
    public static byte[] CalibrationModel(OnnxGraph graph, QuantizationPlan plan)
    {
        var copy = OnnxGraph.FromBytes(graph.ToBytes(), graph.Source);
        copy.ExposeAsOutputs(plan.CalibrationTensors);
        return copy.ToBytes();
    }

    /// <summary>
    /// Writes a calibration copy of a graph of any size (external data beside it). This uses up
    /// <paramref name="graph"/>: its tensors move to the file, so load the model again to rewrite it.
    /// </summary>
    public static void SaveCalibrationModel(OnnxGraph graph, QuantizationPlan plan, string path)
    {
        graph.ExposeAsOutputs(plan.CalibrationTensors);
        graph.Save(path, Path.GetFileName(path) + "_data");
    }

    /// <summary>Rewrites <paramref name="graph"/> in place.</summary>
    public static QuantizationRecord Apply(OnnxGraph graph, string component, QuantizationPlan plan, CalibrationCollector? calibration,
        ClippingMethod clipping, string? calibrationSource)
    {
        var histograms = calibration?.Histograms ?? new Dictionary<string, ActivationHistogram>();
        var (layers, kept) = Int8Rewriter.Rewrite(graph, plan, histograms, clipping);
        var summary = calibration is null ? null : new CalibrationSummary(calibrationSource ?? "", calibration.Runs, clipping.ToString());
        return new QuantizationRecord(QuantizationRecord.CurrentFormat, QuantizationRecord.Int8Scheme, component, summary, layers, kept);
    }
}
