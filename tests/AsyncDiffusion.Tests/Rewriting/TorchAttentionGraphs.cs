using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Tests.Rewriting;

/// <summary>
/// Attention written the way torch.onnx exports diffusers' attention processors, with dynamic
/// shapes: <c>F.scaled_dot_product_attention</c> (torch 2: √scale on Q and on Kᵀ, the scale
/// computed from the query's shape) and the batched heads of older diffusers (Reshape to
/// [B·N, S, H], <c>baddbmm</c> with a zero term, Casts around Softmax). Inputs x [B, S, C] and
/// context [B, L, Cc]; output [B, S, C].
/// </summary>
internal static class TorchAttentionGraphs
{
    public const int Channels = 16, ContextChannels = 12, Heads = 2;

    public static Dictionary<string, long[]> Shapes(int batch, int queries, int keys) =>
        new() { ["x"] = [batch, queries, Channels], ["context"] = [batch, keys, ContextChannels] };

    /// <summary>diffusers' AttnProcessor2_0 through torch.onnx's scaled_dot_product_attention (opset 14+).</summary>
    public static byte[] ScaledDotProduct(bool explicitScale = false)
    {
        using var g = new OnnxGraphBuilder("sdpa", new SeededWeights(7), half: false);
        var (x, context) = Inputs(g);
        var q = Linear(g, x, "to_q", Channels);
        var k = Linear(g, context, "to_k", ContextChannels);
        var v = Linear(g, context, "to_v", ContextChannels);
        var batch = Dim(g, x, 0);
        var headDim = g.Op("Div", [Dim(g, k, 2), g.Int64Shaped([Heads], [])]);
        var split = g.Op("Concat", [Unsqueeze(g, batch), g.Int64(-1), g.Int64(Heads), Unsqueeze(g, headDim)], ("axis", 0));
        string Heads4(string t) => g.Op("Transpose", [g.Op("Reshape", [t, split])], ("perm", new long[] { 0, 2, 1, 3 }));
        var (q4, k4, v4) = (Heads4(q), Heads4(k), Heads4(v));

        // torch's _attention_scale: 1/√(query.shape[-1]) unless a scale is given.
        string scale = explicitScale ? g.Float(0.3f)
            : g.Op("Cast", [g.Op("Div", [g.Float32([1f], [1]), g.Op("Sqrt", [g.Op("Cast", [g.Op("Slice", [g.Op("Shape", [q4]), g.Int64(-1), g.Int64(long.MaxValue)])],
                ("to", (int)TensorProto.Types.DataType.Float))])])], ("to", (int)TensorProto.Types.DataType.Float));
        var root = g.Op("Sqrt", [scale]);
        var scores = g.Op("MatMul", [g.Op("Mul", [q4, root]), g.Op("Mul", [g.Op("Transpose", [k4], ("perm", new long[] { 0, 1, 3, 2 })), root])]);
        var attended = g.Op("MatMul", [g.Op("Softmax", [scores], ("axis", -1)), v4]);
        var merge = g.Op("Concat", [Unsqueeze(g, batch), g.Int64(-1), Unsqueeze(g, g.Op("Mul", [g.Int64Shaped([Heads], []), headDim]))], ("axis", 0));
        var merged = g.Op("Reshape", [g.Op("Transpose", [attended], ("perm", new long[] { 0, 2, 1, 3 })), merge]);
        g.Output("y", Linear(g, merged, "to_out", Channels), TensorProto.Types.DataType.Float, "batch", "queries", Channels);
        return g.ToBytes("torch-like");
    }

    /// <summary>
    /// Older diffusers (head_to_batch_dim, get_attention_scores with baddbmm, batch_to_head_dim), as
    /// torch 1.13 exported it. <paramref name="exposeScores"/> also makes the attention
    /// probabilities a graph output, which must keep the rewrite away.
    /// </summary>
    public static byte[] BatchedHeads(bool exposeScores = false)
    {
        using var g = new OnnxGraphBuilder("batched", new SeededWeights(8), half: false);
        var (x, context) = Inputs(g);
        var q = g.Op("Add", [g.Parameter("to_q.bias", [Channels], 0.1), Linear(g, x, "to_q", Channels)]);
        var k = g.Op("Add", [g.Parameter("to_k.bias", [Channels], 0.1), Linear(g, context, "to_k", ContextChannels)]);
        var v = g.Op("Add", [g.Parameter("to_v.bias", [Channels], 0.1), Linear(g, context, "to_v", ContextChannels)]);
        var heads = g.Int64Shaped([Heads], []);
        string ToBatch(string t)
        {
            var (b, s, d) = (Dim(g, t, 0), Dim(g, t, 1), Dim(g, t, 2));
            var h = g.Op("Div", [d, heads]);
            var split = g.Op("Reshape", [t, g.Op("Concat", [Unsqueeze(g, b), Unsqueeze(g, s), g.Int64(Heads), Unsqueeze(g, h)], ("axis", 0))]);
            var moved = g.Op("Transpose", [split], ("perm", new long[] { 0, 2, 1, 3 }));
            return g.Op("Reshape", [moved, g.Op("Concat", [Unsqueeze(g, g.Op("Mul", [b, heads])), Unsqueeze(g, s), Unsqueeze(g, h)], ("axis", 0))]);
        }
        var (qb, kb, vb) = (ToBatch(q), ToBatch(k), ToBatch(v));
        var product = g.Op("Mul", [g.Op("MatMul", [qb, g.Op("Transpose", [kb], ("perm", new long[] { 0, 2, 1 }))]), g.Float(1f / MathF.Sqrt(Channels / Heads))]);
        var empty = g.Op("ConstantOfShape", [g.Op("Concat", [Unsqueeze(g, Dim(g, qb, 0)), Unsqueeze(g, Dim(g, qb, 1)), Unsqueeze(g, Dim(g, kb, 1))], ("axis", 0))]);
        var scores = g.Op("Add", [product, g.Op("Mul", [empty, g.Float(0f)])]);
        var probabilities = g.Op("Cast", [g.Op("Softmax", [g.Op("Cast", [scores], ("to", 1))], ("axis", -1))], ("to", 1));
        var attended = g.Op("MatMul", [probabilities, vb]);
        var (bn, sq, hd) = (Dim(g, attended, 0), Dim(g, attended, 1), Dim(g, attended, 2));
        var unbatched = g.Op("Reshape", [attended, g.Op("Concat", [Unsqueeze(g, g.Op("Div", [bn, heads])), g.Int64(Heads), Unsqueeze(g, sq), Unsqueeze(g, hd)], ("axis", 0))]);
        var moved = g.Op("Transpose", [unbatched], ("perm", new long[] { 0, 2, 1, 3 }));
        var merged = g.Op("Reshape", [moved, g.Op("Concat", [Unsqueeze(g, g.Op("Div", [bn, heads])), Unsqueeze(g, sq), Unsqueeze(g, g.Op("Mul", [hd, heads]))], ("axis", 0))]);
        g.Output("y", Linear(g, merged, "to_out", Channels), TensorProto.Types.DataType.Float, "batch", "queries", Channels);
        if (exposeScores) g.Output("probabilities", probabilities, TensorProto.Types.DataType.Float, "batch_heads", "queries", "keys");
        return g.ToBytes("torch-like");
    }

    private static (string X, string Context) Inputs(OnnxGraphBuilder g) =>
        (g.Input("x", TensorProto.Types.DataType.Float, "batch", "queries", Channels),
         g.Input("context", TensorProto.Types.DataType.Float, "batch", "keys", ContextChannels));

    // torch exports weights as [in, out] initializers read by MatMul.
    private static string Linear(OnnxGraphBuilder g, string x, string name, int din) =>
        g.Op("MatMul", [x, g.Parameter($"{name}.weight", [Channels, din], ParameterInit.Uniform(1 / Math.Sqrt(din)), transposed: true)]);

    private static string Dim(OnnxGraphBuilder g, string t, long axis) => g.Op("Gather", [g.Op("Shape", [t]), g.Int64Shaped([axis], [])], ("axis", 0));

    private static string Unsqueeze(OnnxGraphBuilder g, string scalar) => g.Op("Unsqueeze", [scalar, g.Int64(0)]);
}
