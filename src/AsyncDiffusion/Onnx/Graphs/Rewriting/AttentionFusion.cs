using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Replaces scaled dot-product attention written out in plain operators (see
/// <see cref="AttentionPattern"/>) with ONNX Runtime's fused <c>com.microsoft.MultiHeadAttention</c>.
/// On the CPU provider it runs a tiled (flash) kernel: no [B, N, S, S] score tensor — 1 GiB per
/// self-attention at 512 px with CFG — and measured ≈18 % faster than MatMul + Softmax + MatMul
/// at SD's 4096-token shapes. <c>com.microsoft.Attention</c> would also fold the Q/K/V projections
/// in, but takes self-attention only and materialises the scores on CPU.
/// Float32 graphs only: the CPU kernel has no float16 version, and fp16 exports run as float16.
/// </summary>
internal static class AttentionFusion
{
    public const string Operator = "MultiHeadAttention";
    public const string Domain = "com.microsoft";

    /// <summary>Rewrites every attention found; returns how many.</summary>
    public static int Apply(OnnxGraph graph)
    {
        if (graph.HasHalfPrecision) return 0;
        var replacements = new Dictionary<NodeProto, IReadOnlyList<NodeProto>>();
        foreach (var softmax in graph.Graph.Node.Where(n => n.OpType == "Softmax").ToList())
        {
            if (AttentionPattern.Find(graph, softmax) is not { } attention || replacements.ContainsKey(attention.Last)) continue;
            var node = new NodeProto { OpType = Operator, Domain = Domain, Name = graph.Fresh($"{OnnxGraph.NameOf(softmax)}_fused") };
            node.Input.AddRange([attention.Query, attention.Key, attention.Value]);
            node.Output.Add(attention.Last.Output[0]);
            node.Attribute.Add(new AttributeProto { Name = "num_heads", Type = AttributeProto.Types.AttributeType.Int, I = attention.Heads });
            node.Attribute.Add(new AttributeProto { Name = "scale", Type = AttributeProto.Types.AttributeType.Float, F = attention.Scale });
            replacements[attention.Last] = [node];
        }
        if (replacements.Count == 0) return 0;
        graph.RequireOpset(Domain, 1);
        graph.ReplaceNodes(replacements);
        graph.RemoveUnusedNodes();
        return replacements.Count;
    }
}
