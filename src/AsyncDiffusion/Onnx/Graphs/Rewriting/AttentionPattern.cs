using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// One scaled dot-product attention found in a graph by structure: Softmax(scale · Q·Kᵀ)·V with
/// the head splits and merges around it, starting from the tokens Q, K and V as [B, S, N·H] and
/// ending at the merged result [B, S, N·Hv]. Matches what our graph builder writes, what
/// torch.onnx writes for <c>F.scaled_dot_product_attention</c> (√scale on Q and on Kᵀ, the scale
/// computed from the query's shape) and for older diffusers' batched heads (Reshape to
/// [B·N, S, H], <c>baddbmm</c> with a zero term, Casts around Softmax). Anything else (masks,
/// a bias added to the scores, dropout, other consumers of the inner tensors) is left alone.
/// </summary>
internal sealed record AttentionPattern(string Query, string Key, string Value, int Heads, float Scale, NodeProto Last)
{
    private const int MaxChain = 12;

    /// <summary>The attention whose Softmax is <paramref name="softmax"/>, or null when it is not one this rewrite can replace.</summary>
    public static AttentionPattern? Find(OnnxGraph graph, NodeProto softmax)
    {
        if (!IsDefault(softmax) || softmax.Input.Count != 1) return null;
        var sizes = new Sizes();
        var scales = new List<(NodeProto Node, string Factor, bool Divide)>();

        // Back from Softmax to the score product, through scale factors, float Casts and baddbmm's zero term.
        string t = softmax.Input[0];
        NodeProto? scores = null;
        for (int i = 0; i < MaxChain && scores is null; i++)
        {
            if (ValueConsumers(graph, t) != 1 || graph.GraphOutputs.Contains(t) || graph.Producer(t) is not { } p || !IsDefault(p)) return null;
            if (p.OpType == "MatMul") scores = p;
            else if (PassThrough(graph, p)) t = p.Input[0];
            else if (ScaleFactor(graph, p) is { } scale) { scales.Add(scale); t = Other(p, scale.Factor); }
            else if (p.OpType == "Add" && p.Input.Count == 2 && IsZeroTerm(graph, p.Input[1])) t = p.Input[0];
            else if (p.OpType == "Add" && p.Input.Count == 2 && IsZeroTerm(graph, p.Input[0])) t = p.Input[1];
            else return null;
        }
        if (scores is null) return null;

        // Forward from Softmax to the product with the values.
        t = softmax.Output[0];
        NodeProto? context = null;
        for (int i = 0; i < MaxChain && context is null; i++)
        {
            if (ValueReaders(graph, t) is not [var c] || graph.GraphOutputs.Contains(t) || !IsDefault(c)) return null;
            if (c.OpType == "MatMul" && c.Input[0] == t) context = c;
            else if (PassThrough(graph, c)) t = c.Output[0];
            else return null;
        }
        if (context is null) return null;

        var q = Operand.Walk(graph, scores.Input[0], 's', 'h', sizes, scales);
        var k = Operand.Walk(graph, scores.Input[1], 'l', 'h', sizes, scales);
        var v = Operand.Walk(graph, context.Input[1], 'l', 'v', sizes, null);
        if (q is null || k is null || v is null || sizes.Heads is not long heads) return null;
        bool fourD = q.Layout.Is("b", "n", "s", "h") && k.Layout.Is("b", "n", "h", "l") && v.Layout.Is("b", "n", "l", "v");
        bool batched = q.Layout.Is("bn", "s", "h") && k.Layout.Is("bn", "h", "l") && v.Layout.Is("bn", "l", "v");
        if (!fourD && !batched) return null;
        if (!SoftmaxOnLastAxis(graph, softmax, q.Layout.Rank)) return null;

        // Forward from the product with the values to the merged [B, S, N·Hv].
        var layout = fourD ? new HeadLayout(["b", "n", "s", "v"]) : new HeadLayout(["bn", "s", "v"]);
        var arithmetic = new ShapeArithmetic(graph, sizes.ShapeOf);
        t = context.Output[0];
        NodeProto? last = null;
        for (int i = 0; i < MaxChain && last is null; i++)
        {
            if (ValueReaders(graph, t) is not [var c] || graph.GraphOutputs.Contains(t) || !IsDefault(c)) return null;
            if (c.OpType == "Transpose") layout = layout.Transpose(Ints(c, "perm"));
            else if (c.OpType == "Reshape" && arithmetic.Elements(c.Input[1]) is { } target && layout.Reshape(target, sizes.Of) is { } reshaped) layout = reshaped;
            else if (!PassThrough(graph, c)) return null;
            t = c.Output[0];
            if (layout.Is("b", "s", "nv")) last = c;
            else if (layout.Rank == 0) return null;
        }
        if (last is null) return null;

        double total = 1;
        foreach (var (node, factor, divide) in scales)
        {
            if (arithmetic.Scalar(factor) is not double f || f == 0 || !double.IsFinite(f) || !IsScalarShaped(graph, factor)) return null;
            total = divide ? total / f : total * f;
        }
        return new AttentionPattern(q.Source, k.Source, v.Source, checked((int)heads), (float)total, last);
    }

    /// <summary>One of Q, K, V: the tokens it starts from and the layout it has where it enters a product.</summary>
    private sealed record Operand(string Source, HeadLayout Layout)
    {
        /// <summary>
        /// Walks back from a product's input to the head split (the first Reshape to rank 4 met going
        /// back), then replays the chain forward to learn the layout; scale factors on the way are
        /// collected into <paramref name="scales"/> (null: none allowed, as on the values).
        /// </summary>
        public static Operand? Walk(OnnxGraph graph, string operand, char position, char head, Sizes sizes, List<(NodeProto, string, bool)>? scales)
        {
            var chain = new List<NodeProto>();
            string t = operand;
            NodeProto? split = null;
            var probe = new ShapeArithmetic(graph, _ => null);
            for (int i = 0; i < MaxChain && split is null; i++)
            {
                if (graph.Producer(t) is not { } p || !IsDefault(p) || graph.GraphOutputs.Contains(t)) return null;
                if (i > 0 && ValueConsumers(graph, t) != 1) return null;
                chain.Add(p);
                if (p.OpType == "Reshape" && probe.Elements(p.Input[1]) is { Length: 4 }) split = p;
                else if (p.OpType is "Reshape" or "Transpose" || PassThrough(graph, p)) t = p.Input[0];
                else if (scales is not null && ScaleFactor(graph, p) is { } scale) t = Other(p, scale.Factor);
                else return null;
            }
            if (split is null) return null;
            chain.Reverse();

            string source = split.Input[0];
            var layout = HeadLayout.Tokens(position, head);
            long? width = LastDimension(graph, source);
            var arithmetic = new ShapeArithmetic(graph, sizes.ShapeOf);
            string current = source;
            foreach (var node in chain)
            {
                if (node.OpType == "Reshape")
                {
                    if (arithmetic.Elements(node.Input[1]) is not { } target || layout.Reshape(target, sizes.Of) is not { } next) return null;
                    if (node == split && !sizes.LearnSplit(next, target, head, width)) return null;
                    layout = next;
                }
                else if (node.OpType == "Transpose") layout = layout.Transpose(Ints(node, "perm"));
                else if (node.OpType is "Mul" or "Div")
                {
                    if (ScaleFactor(graph, node) is not { } scale || Other(node, scale.Factor) != current) return null;
                    scales!.Add(scale);
                }
                if (layout.Rank == 0) return null;
                current = node.Output[0];
                sizes.Record(current, layout);
            }
            return current == operand ? new Operand(source, layout) : null;
        }
    }

    /// <summary>What is known of the symbols' sizes, and of the shapes of the tensors walked so far.</summary>
    private sealed class Sizes
    {
        private readonly Dictionary<char, long> _known = [];
        private readonly Dictionary<string, HeadLayout> _layouts = new(StringComparer.Ordinal);

        public long? Heads => _known.TryGetValue('n', out long n) ? n : null;

        public long? Of(string axis)
        {
            long product = 1;
            foreach (char c in axis)
                if (_known.TryGetValue(c, out long v)) product *= v;
                else return null;
            return product;
        }

        public void Record(string tensor, HeadLayout layout) => _layouts[tensor] = layout;

        public long?[]? ShapeOf(string tensor) => _layouts.TryGetValue(tensor, out var layout) ? layout.Axes.Select(Of).ToArray() : null;

        /// <summary>Learns the heads and head size from a split's target and the tokens' width; false on a contradiction.</summary>
        public bool LearnSplit(HeadLayout split, double[] target, char head, long? width)
        {
            int n = Array.IndexOf(split.Axes, "n"), h = Array.IndexOf(split.Axes, head.ToString());
            if (n < 0 || h < 0) return false;
            long? heads = Known(target[n]), headSize = Known(target[h]);
            if (heads is null && headSize is long hs && width is long w && hs > 0 && w % hs == 0) heads = w / hs;
            if (headSize is null && heads is long nh && width is long w2 && nh > 0 && w2 % nh == 0) headSize = w2 / nh;
            return Learn('n', heads) && Learn(head, headSize) && Heads is not null;
        }

        private bool Learn(char symbol, long? value)
        {
            if (value is not long v) return true;
            if (_known.TryGetValue(symbol, out long old)) return old == v;
            _known[symbol] = v;
            return true;
        }

        private static long? Known(double t) => double.IsNaN(t) || t <= 0 ? null : (long)t;
    }

    /// <summary>The last dimension of a linear layer's output, from its weight (float or int8) or bias.</summary>
    private static long? LastDimension(OnnxGraph graph, string tensor)
    {
        for (int i = 0; i < 4 && graph.Producer(tensor) is { } p; i++)
        {
            switch (p.OpType)
            {
                case "MatMul" or "DynamicQuantizeMatMul" or "MatMulInteger" when p.Input.Count > 1 && graph.ConstantTensor(p.Input[1]) is { Dims.Count: 2 } w:
                    return w.Dims[1];
                case "Gemm" when p.Input.Count > 1 && graph.ConstantTensor(p.Input[1]) is { Dims.Count: 2 } w:
                    return (p.Attribute.FirstOrDefault(a => a.Name == "transB")?.I ?? 0) != 0 ? w.Dims[0] : w.Dims[1];
                case "Add" or "Mul" or "Cast" or "Identity" when p.Input.Count >= 1:
                    if (p.OpType == "Add" && p.Input.Count == 2 && graph.ConstantTensor(p.Input[0]) is { Dims.Count: 1 } b0) return b0.Dims[0];
                    if (p.OpType == "Add" && p.Input.Count == 2 && graph.ConstantTensor(p.Input[1]) is { Dims.Count: 1 } b1) return b1.Dims[0];
                    tensor = p.Input.Count == 2 && graph.IsConstant(p.Input[0]) ? p.Input[1] : p.Input[0];
                    break;
                default:
                    return null;
            }
        }
        return null;
    }

    // A node the values pass through unchanged: Identity, or a Cast to float32 (exporters cast float tensors to float around Softmax).
    private static bool PassThrough(OnnxGraph graph, NodeProto node) =>
        node.OpType == "Identity" || (node.OpType == "Cast" && (node.Attribute.FirstOrDefault(a => a.Name == "to")?.I ?? 0) == (long)TensorProto.Types.DataType.Float);

    // A Mul or Div by a factor computed from constants and shapes alone (its value is checked later); the other input carries the values.
    private static (NodeProto Node, string Factor, bool Divide)? ScaleFactor(OnnxGraph graph, NodeProto node)
    {
        if (node.Input.Count != 2 || node.OpType is not ("Mul" or "Div")) return null;
        bool first = IsShapeArithmetic(graph, node.Input[0]), second = IsShapeArithmetic(graph, node.Input[1]);
        if (second && !first) return (node, node.Input[1], node.OpType == "Div");
        if (first && !second && node.OpType == "Mul") return (node, node.Input[0], false);
        return null;
    }

    // Whether a tensor is computed from constants and tensor shapes alone (a few dozen nodes at most; anything larger is not).
    private static bool IsShapeArithmetic(OnnxGraph graph, string tensor)
    {
        var pending = new Stack<string>([tensor]);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.TryPop(out var t))
        {
            if (!seen.Add(t) || graph.IsConstant(t)) continue;
            if (seen.Count > 64 || graph.Producer(t) is not { } p || p.Input.Count == 0) return false;
            if (p.OpType is "Shape" or "Size") continue;
            foreach (var i in p.Input.Where(i => i.Length > 0)) pending.Push(i);
        }
        return true;
    }

    private static string Other(NodeProto node, string factor) => node.Input[0] == factor ? node.Input[1] : node.Input[0];

    // A constant factor must not raise the operand's rank by broadcasting: a scalar or a one-element vector.
    private static bool IsScalarShaped(OnnxGraph graph, string factor) =>
        graph.ConstantTensor(factor) is not { } t || t.Dims.Count == 0 || (t.Dims.Count == 1 && t.Dims[0] == 1);

    // baddbmm(empty, q, kᵀ, beta=0) exports as scores·α + empty·0 with empty = ConstantOfShape(0).
    private static bool IsZeroTerm(OnnxGraph graph, string tensor)
    {
        if (graph.Producer(tensor) is not { } p) return false;
        if (p.OpType == "ConstantOfShape") return IsZeroFill(p);
        if (p.OpType != "Mul" || p.Input.Count != 2) return false;
        for (int i = 0; i < 2; i++)
            if (graph.Producer(p.Input[i]) is { OpType: "ConstantOfShape" } fill && IsZeroFill(fill)
                && graph.ConstantTensor(p.Input[1 - i]) is { } zero && TensorData.Numbers(zero) is { } z && z.All(x => x == 0))
                return true;
        return false;

        static bool IsZeroFill(NodeProto fill) =>
            fill.Attribute.FirstOrDefault(a => a.Name == "value")?.T is not { } value || TensorData.Numbers(value) is { } v && v.All(x => x == 0);
    }

    // Before opset 13 Softmax's axis defaults to 1 and flattens from it; only the last axis means the same in both.
    private static bool SoftmaxOnLastAxis(OnnxGraph graph, NodeProto softmax, int rank)
    {
        long axis = softmax.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? (graph.DefaultOpset >= 13 ? -1 : 1);
        return axis == -1 || axis == rank - 1;
    }

    // Consumers that read the tensor's values; Shape and Size read only its shape (torch computes attention's scale from the query's shape).
    private static List<NodeProto> ValueReaders(OnnxGraph graph, string tensor) => graph.Consumers(tensor).Where(c => c.OpType is not ("Shape" or "Size")).ToList();

    private static int ValueConsumers(OnnxGraph graph, string tensor) => ValueReaders(graph, tensor).Count;

    private static bool IsDefault(NodeProto node) => node.Domain is "" or "ai.onnx";

    private static IReadOnlyList<long>? Ints(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.Ints;
}
