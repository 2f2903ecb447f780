using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace AsyncDiffusion.Tests.Quantization;

/// <summary>What ONNX Runtime actually runs: the graph it saves after its own optimisations.</summary>
internal static class OrtGraphs
{
    private static readonly HashSet<string> FloatWeightOps = ["Conv", "FusedConv", "NhwcFusedConv", "MatMul", "FusedMatMul", "Gemm"];
    private static readonly HashSet<string> Int8WeightOps = ["QLinearConv", "DynamicQuantizeMatMul"];

    public static GraphProto Optimised(byte[] model, string path)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, OptimizedModelFilePath = path };
        using (new InferenceSession(model, options)) { }
        return ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph;
    }

    /// <summary>
    /// Weight layers left in float (a Conv/MatMul/Gemm in any domain, fused or not, whose weight is
    /// a float initializer) and int8 weight layers, as ONNX Runtime will execute them.
    /// </summary>
    public static (int Float, int Int8) CountWeightLayers(GraphProto graph)
    {
        var floatInitializers = graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Float).Select(t => t.Name).ToHashSet();
        int fp = graph.Node.Count(n => FloatWeightOps.Contains(n.OpType) && n.Input.Count > 1 && floatInitializers.Contains(n.Input[1]));
        int q = graph.Node.Count(n => Int8WeightOps.Contains(n.OpType));
        return (fp, q);
    }
}
