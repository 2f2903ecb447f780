using System.Text.RegularExpressions;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>A Conv, MatMul or Gemm whose weights are constants in the graph.</summary>
internal sealed record WeightLayer(NodeProto Node, string Input, string Weight, string? Bias, string Output)
{
    public string OpType => Node.OpType;
    public bool IsConv => OpType == "Conv";

    /// <summary>The node's name, or its output where the exporter left it unnamed.</summary>
    public string Name => Node.Name.Length > 0 ? Node.Name : Output;
}

/// <summary>Which weight layers become int8 and which stay float, and why.</summary>
internal sealed record QuantizationPlan(IReadOnlyList<WeightLayer> Quantize, IReadOnlyList<(WeightLayer Layer, string Reason)> Kept)
{
    /// <summary>Tensors whose ranges static quantization needs: every quantized conv's input and output.</summary>
    public IReadOnlyList<string> CalibrationTensors =>
        Quantize.Where(l => l.IsConv).SelectMany(l => new[] { l.Input, l.Output }).Distinct(StringComparer.Ordinal).ToArray();
}

/// <summary>
/// Finds weight layers by structure (op type and constant weights, never by layer names) and
/// decides which stay float: layers matching an exclude pattern, the time embedding and its
/// projections (inputs that depend only on the timestep), the first and last convolutions and
/// convolutions on image or latent channels, and Gemm forms the int8 kernels do not cover.
/// Attention score and value products (MatMuls of two computed tensors) and normalisations
/// have no constant weights, so they are never candidates.
/// </summary>
internal static class LayerSelection
{
    /// <summary>Convolutions with this many input or output channels or fewer touch images or latents.</summary>
    public const int BoundaryChannels = 8;

    public static IReadOnlyList<WeightLayer> Find(OnnxGraph graph)
    {
        var layers = new List<WeightLayer>();
        foreach (var node in graph.Graph.Node)
            if (AsWeightLayer(graph, node) is { } layer) layers.Add(layer);
        return layers;
    }

    public static WeightLayer? AsWeightLayer(OnnxGraph graph, NodeProto node)
    {
        if (node.Domain is not ("" or "ai.onnx") || node.Input.Count < 2 || node.Output.Count < 1) return null;
        var weight = graph.ConstantTensor(node.Input[1]);
        if (weight is null) return null;
        string? bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null;
        return node.OpType switch
        {
            "Conv" when weight.Dims.Count >= 3 => new WeightLayer(node, node.Input[0], node.Input[1], bias, node.Output[0]),
            "MatMul" or "Gemm" when weight.Dims.Count == 2 => new WeightLayer(node, node.Input[0], node.Input[1], bias, node.Output[0]),
            _ => null,
        };
    }

    public static QuantizationPlan Plan(OnnxGraph graph, IReadOnlyList<string> excludePatterns)
    {
        var layers = Find(graph);
        var weightNodes = layers.Select(l => l.Node).ToHashSet();
        var flow = new GraphFlow(graph, weightNodes.Contains);
        var patterns = excludePatterns.Select(p => (Pattern: p, Regex: Glob(p))).ToArray();
        var quantize = new List<WeightLayer>();
        var kept = new List<(WeightLayer, string)>();
        foreach (var layer in layers)
        {
            string? reason = KeepReason(graph, flow, layer, patterns);
            if (reason is null) quantize.Add(layer);
            else kept.Add((layer, reason));
        }
        return new QuantizationPlan(quantize, kept);
    }

    private static string? KeepReason(OnnxGraph graph, GraphFlow flow, WeightLayer layer, (string Pattern, Regex Regex)[] patterns)
    {
        foreach (var (pattern, regex) in patterns)
            if (regex.IsMatch(layer.Name) || regex.IsMatch(layer.Weight) || regex.IsMatch(layer.Output))
                return $"excluded by pattern '{pattern}'";
        var weight = graph.ConstantTensor(layer.Weight)!;
        if (!TensorData.IsFloat(weight)) return $"weights are {(TensorProto.Types.DataType)weight.DataType}, not float32";
        if (layer.Bias is not null && graph.ConstantTensor(layer.Bias) is null)
            return "bias is computed, not a constant";
        if (layer.Bias is not null && !TensorData.IsFloat(graph.ConstantTensor(layer.Bias)!)) return "bias is not float32";
        if (flow.DependsOnlyOnScalarInputs(layer.Input)) return "time embedding: its input depends only on the timestep";
        if (layer.OpType == "Gemm" && UnsupportedGemm(graph, layer) is { } gemm) return gemm;
        if (!layer.IsConv) return null;

        if (!flow.IsAfterWeightLayer(layer.Input)) return "first convolution: reads a graph input directly";
        if (flow.ReachesOutputDirectly(layer.Output)) return "last convolution: writes a graph output directly";
        long group = layer.Node.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;
        long cout = weight.Dims[0], cin = weight.Dims[1] * group;
        if (cin <= BoundaryChannels || cout <= BoundaryChannels)
            return $"image/latent-channel convolution ({cin} → {cout} channels)";
        return null;
    }

    private static string? UnsupportedGemm(OnnxGraph graph, WeightLayer layer)
    {
        long Int(string name, long fallback) => layer.Node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? fallback;
        if (Int("transA", 0) != 0) return "Gemm with transA is not covered by the int8 kernel";
        var weight = graph.ConstantTensor(layer.Weight)!;
        long n = Int("transB", 0) != 0 ? weight.Dims[0] : weight.Dims[1];
        if (layer.Bias is not null && TensorData.ElementCount(graph.ConstantTensor(layer.Bias)!) != n)
            return "Gemm bias is not one value per output column";
        return null;
    }

    private static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$", RegexOptions.CultureInvariant);
}
