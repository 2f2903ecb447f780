using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Evaluates the small computations exporters write around shapes and scales (Shape → Gather or
/// Slice → Cast → Sqrt → Div …, Concat of Unsqueezed dimensions into a Reshape target), given
/// what is known of some tensors' shapes. Elements that depend on an unknown dimension come out
/// as NaN; a result whose length cannot be known is null. torch.onnx writes attention's
/// 1/√d this way (from the query's shape) and most Reshape targets from dynamic dimensions.
/// </summary>
internal sealed class ShapeArithmetic(OnnxGraph graph, Func<string, long?[]?> knownShape)
{
    private const int MaxDepth = 24, MaxElements = 64;

    /// <summary>
    /// A small tensor's elements, NaN where unknown, or null when even its length is unknown (the
    /// shape of a tensor of unknown rank); <see cref="Integer"/> says whether its type is an integer type.
    /// </summary>
    private sealed record Value(double[]? Elements, bool Integer);

    /// <summary>The one value of a one-element tensor, or null when it is not known.</summary>
    public double? Scalar(string tensor) =>
        Evaluate(tensor, 0) is { Elements: [var x] } && !double.IsNaN(x) ? x : null;

    /// <summary>The elements of a 0-D or 1-D tensor (NaN where unknown), or null when even its length is unknown.</summary>
    public double[]? Elements(string tensor) => Evaluate(tensor, 0)?.Elements;

    private static readonly Value Unknown = new(null, false);

    private Value? Evaluate(string tensor, int depth)
    {
        if (depth > MaxDepth || tensor.Length == 0) return null;
        if (graph.ConstantTensor(tensor) is { } constant)
            return TensorData.ElementCount(constant) <= MaxElements && TensorData.Numbers(constant) is { } numbers ? new Value(numbers, TensorData.IsInteger(constant)) : null;
        var node = graph.Producer(tensor);
        if (node is null || node.Domain is not ("" or "ai.onnx")) return null;
        Value? In(int i) => i < node.Input.Count ? Evaluate(node.Input[i], depth + 1) : null;

        switch (node.OpType)
        {
            case "Shape":
                return ShapeOf(node);
            case "Identity" or "Unsqueeze" or "Squeeze" or "Flatten" or "Reshape":
                return In(0);
            case "Cast":
                return In(0) is { } cast ? CastTo(cast, Int(node, "to", 1)) : null;
            case "Sqrt" or "Reciprocal" or "Neg" or "Floor" or "Ceil":
                return In(0) is { Elements: { } x } input ? new Value(x.Select(v => Unary(node.OpType, v)).ToArray(), input.Integer) : null;
            case "Add" or "Sub" or "Mul" or "Div" or "Pow":
                return In(0) is { } a && In(1) is { } b ? Binary(node.OpType, a, b) : null;
            case "Gather":
                return Int(node, "axis", 0) == 0 && In(0) is { } data && graph.ConstantTensor(node.Input[1]) is { } indexTensor && TensorData.Numbers(indexTensor) is { } indices
                    ? Gather(data, indices) : null;
            case "Slice":
                return Slice(node, depth);
            case "Concat":
                if (Int(node, "axis", 0) != 0) return null;
                var parts = node.Input.Select(i => Evaluate(i, depth + 1)).ToList();
                return parts.All(p => p?.Elements is not null) ? new Value(parts.SelectMany(p => p!.Elements!).ToArray(), parts.All(p => p!.Integer)) : null;
            default:
                return null;
        }
    }

    private Value? ShapeOf(NodeProto node)
    {
        var dims = knownShape(node.Input[0]);
        if (dims is null) return Unknown with { Integer = true };
        int rank = dims.Length;
        int start = Clamp(Int(node, "start", 0), rank), end = Clamp(Int(node, "end", rank), rank);
        return new Value(dims[start..Math.Max(start, end)].Select(d => d is long v ? v : double.NaN).ToArray(), true);
    }

    private static int Clamp(long index, int rank) => (int)Math.Clamp(index < 0 ? index + rank : index, 0, rank);

    // Gather from a vector whose length is unknown still gives one (unknown) element per index.
    private static Value Gather(Value data, double[] indices)
    {
        if (data.Elements is not { } elements) return new Value(indices.Select(_ => double.NaN).ToArray(), data.Integer);
        int n = elements.Length;
        return new Value(indices.Select(i => (long)i < 0 ? (long)i + n : (long)i).Select(i => i >= 0 && i < n ? elements[i] : double.NaN).ToArray(), data.Integer);
    }

    private Value? Slice(NodeProto node, int depth)
    {
        var data = Evaluate(node.Input[0], depth + 1);
        if (data?.Elements is not { } elements) return null;
        double[]? starts, ends, axes = null, steps = null;
        if (node.Input.Count >= 3)
        {
            starts = Constant(node.Input[1]);
            ends = Constant(node.Input[2]);
            if (node.Input.Count > 3 && node.Input[3].Length > 0) axes = Constant(node.Input[3]);
            if (node.Input.Count > 4 && node.Input[4].Length > 0) steps = Constant(node.Input[4]);
        }
        else
        {
            starts = node.Attribute.FirstOrDefault(a => a.Name == "starts")?.Ints.Select(v => (double)v).ToArray();
            ends = node.Attribute.FirstOrDefault(a => a.Name == "ends")?.Ints.Select(v => (double)v).ToArray();
            axes = node.Attribute.FirstOrDefault(a => a.Name == "axes")?.Ints.Select(v => (double)v).ToArray();
        }
        if (starts is not [var s] || ends is not [var e] || (axes is not null and not [0 or -1]) || (steps is not null and not [1])) return null;
        int n = elements.Length;
        int from = Clamp(s, n), to = Clamp(e, n);
        return new Value(elements[from..Math.Max(from, to)], data.Integer);

        static int Clamp(double index, int n) => (int)Math.Clamp(index < 0 ? index + n : Math.Min(index, n), 0, n);
    }

    private double[]? Constant(string name) => graph.ConstantTensor(name) is { } t ? TensorData.Numbers(t) : null;

    private static Value CastTo(Value x, long type)
    {
        bool integer = (TensorProto.Types.DataType)type is TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32
            or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8;
        return new Value(integer ? x.Elements?.Select(Math.Truncate).ToArray() : x.Elements, integer);
    }

    private static double Unary(string op, double v) => op switch
    {
        "Sqrt" => Math.Sqrt(v),
        "Reciprocal" => 1 / v,
        "Neg" => -v,
        "Floor" => Math.Floor(v),
        _ => Math.Ceiling(v),
    };

    private static Value? Binary(string op, Value a, Value b)
    {
        if (a.Elements is not { } left || b.Elements is not { } right) return null;
        int n = Math.Max(left.Length, right.Length);
        if ((left.Length != n && left.Length != 1) || (right.Length != n && right.Length != 1)) return null;
        bool integer = a.Integer && b.Integer;
        var result = new double[n];
        for (int i = 0; i < n; i++)
        {
            double x = left[left.Length == 1 ? 0 : i], y = right[right.Length == 1 ? 0 : i];
            result[i] = op switch
            {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                "Div" => integer ? Math.Truncate(x / y) : x / y,
                _ => Math.Pow(x, y),
            };
        }
        return new Value(result, integer);
    }

    private static long Int(NodeProto node, string name, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? fallback;
}
