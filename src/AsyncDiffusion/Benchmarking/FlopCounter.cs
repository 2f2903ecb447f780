using AsyncDiffusion.Onnx.Graphs;
using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Benchmarking;

/// <summary>
/// FLOPs of one forward pass: 2 per multiply-add of Conv, MatMul and Gemm nodes, and of their
/// int8 forms (QLinearConv counts as Conv, DynamicQuantizeMatMul as MatMul; <see cref="Int8"/>
/// says how much of the total they are).
/// </summary>
public sealed record FlopCount(double Conv, double MatMul, double Gemm, int Nodes, int Unresolved, double Int8 = 0)
{
    public double Total => Conv + MatMul + Gemm;
    public double GFlop => Total / 1e9;

    /// <summary>Of <see cref="MatMul"/>, the products of two activations (attention's Q·Kᵀ and P·V), which run as fused attention once rewritten.</summary>
    public double Attention { get; init; }
}

/// <summary>
/// Counts the FLOPs of an ONNX graph at given input shapes by propagating shapes (and the
/// values of small integer tensors, which Reshape/Slice/Expand need) through the operators
/// Stable Diffusion exports use. Nodes whose shapes cannot be resolved are counted as
/// unresolved rather than guessed.
/// </summary>
public static class FlopCounter
{
    public static FlopCount Count(string onnxPath, IReadOnlyDictionary<string, long[]> inputShapes)
    {
        // Structure only: the weights are not needed to count FLOPs, and would double the process's memory.
        return Count(OnnxStructureReader.Read(onnxPath).Graph, inputShapes);
    }

    public static FlopCount Count(GraphProto graph, IReadOnlyDictionary<string, long[]> inputShapes)
    {
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var values = new Dictionary<string, long[]>(StringComparer.Ordinal);
        var floats = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in graph.Initializer)
        {
            shapes[t.Name] = t.Dims.ToArray();
            if (IntValues(t) is { } v) values[t.Name] = v;
            if (FloatValues(t) is { } f) floats[t.Name] = f;
        }
        foreach (var (name, shape) in inputShapes) shapes[name] = shape;

        double conv = 0, matmul = 0, gemm = 0, int8 = 0, attention = 0;
        int unresolved = 0;
        // Weights: initializers, Constant outputs, and whatever is computed from those alone (Identity of a shared
        // weight, Cast, Transpose, DequantizeLinear): a MatMul with a weight is a linear layer, not attention.
        var constants = new HashSet<string>(graph.Initializer.Select(t => t.Name), StringComparer.Ordinal);
        foreach (var n in graph.Node)
            if (n.OpType == "Constant" || (n.Input.Count > 0 && n.Input.All(i => i.Length == 0 || constants.Contains(i)) && n.Input.Any(i => i.Length > 0)))
                constants.UnionWith(n.Output);
        foreach (var node in graph.Node)
        {
            try
            {
                Infer(node, shapes, values, floats);
            }
            catch (Exception e) when (e is KeyNotFoundException or IndexOutOfRangeException or ArgumentException or InvalidOperationException or NotSupportedException)
            {
                // Unknown shapes stay unknown downstream.
            }
            if (node.OpType is not ("Conv" or "MatMul" or "Gemm" or "QLinearConv" or "DynamicQuantizeMatMul")) continue;
            int weightInput = node.OpType == "QLinearConv" ? 3 : 1;
            if (node.Input.Count <= weightInput || !shapes.ContainsKey(node.Input[0]) || !shapes.ContainsKey(node.Input[weightInput]) || !shapes.ContainsKey(node.Output[0]))
            {
                unresolved++;
                continue;
            }
            var a = shapes[node.Input[0]];
            var b = shapes[node.Input[weightInput]];
            var y = shapes[node.Output[0]];
            switch (node.OpType)
            {
                case "Conv" or "QLinearConv":
                    // y elements × (Cin/groups · kh · kw) multiply-adds
                    double c = 2.0 * Product(y) * Product(b.Skip(1));
                    conv += c;
                    if (node.OpType == "QLinearConv") int8 += c;
                    break;
                case "MatMul" or "DynamicQuantizeMatMul":
                    double m = 2.0 * Product(y) * a[^1];
                    matmul += m;
                    if (node.OpType == "DynamicQuantizeMatMul") int8 += m;
                    else if (!constants.Contains(node.Input[0]) && !constants.Contains(node.Input[1])) attention += m;
                    break;
                default:
                    bool transA = Attr(node, "transA") == 1;
                    gemm += 2.0 * Product(y) * (transA ? a[0] : a[^1]);
                    break;
            }
        }
        return new FlopCount(conv, matmul, gemm, graph.Node.Count, unresolved, int8) { Attention = attention };
    }

    private static void Infer(NodeProto n, Dictionary<string, long[]> s, Dictionary<string, long[]> v, Dictionary<string, float[]> f)
    {
        string op = n.OpType;
        long[] In(int i) => s[n.Input[i]];
        void Out(long[] shape, int i = 0) => s[n.Output[i]] = shape;
        switch (op)
        {
            case "Constant":
                var t = n.Attribute.First(a => a.Name == "value").T;
                Out(t.Dims.ToArray());
                if (IntValues(t) is { } cv) v[n.Output[0]] = cv;
                if (FloatValues(t) is { } cf) f[n.Output[0]] = cf;
                break;
            case "Identity" or "Cast" or "Relu" or "Sigmoid" or "Tanh" or "Exp" or "Sqrt" or "Erf" or "Neg" or "Cos" or "Sin" or "Softmax"
                or "Gelu" or "LayerNormalization" or "GroupNormalization" or "InstanceNormalization" or "Clip" or "Log" or "Abs"
                or "RandomNormalLike" or "Reciprocal" or "Not" or "IsNaN" or "Dropout" or "QuickGelu" or "BiasGelu" or "FastGelu" or "Trilu"
                or "Floor" or "Ceil" or "Round" or "Sign" or "LeakyRelu" or "Elu" or "Softplus" or "HardSigmoid" or "QuantizeLinear" or "DequantizeLinear":
                Out(In(0));
                if (op is "Identity" or "Cast" && v.TryGetValue(n.Input[0], out var same)) v[n.Output[0]] = same;
                break;
            case "Add" or "Sub" or "Mul" or "Div" or "Pow" or "Equal" or "Less" or "Greater" or "Where" or "And" or "Or" or "Max" or "Min":
                var shape = n.Input.Where(i => i.Length > 0).Select(i => s[i]).Aggregate(Broadcast);
                Out(shape);
                if (op is "Add" or "Sub" or "Mul" or "Div" && n.Input.All(v.ContainsKey))
                    v[n.Output[0]] = Elementwise(v[n.Input[0]], v[n.Input[1]], op);
                break;
            case "DynamicQuantizeLinear":
                Out(In(0));
                Out([], 1);
                Out([], 2);
                break;
            case "Shape":
                var shp = In(0);
                long start = Attr(n, "start") ?? 0, end = Attr(n, "end") ?? shp.Length;
                if (start < 0) start += shp.Length;
                if (end < 0) end += shp.Length;
                var sv = shp[(int)start..(int)Math.Min(end, shp.Length)];
                Out([sv.Length]);
                v[n.Output[0]] = sv;
                break;
            case "Conv" or "QLinearConv":
                var x = In(0);
                var w = In(op == "Conv" ? 1 : 3);
                var strides = Ints(n, "strides") ?? Enumerable.Repeat(1L, x.Length - 2).ToArray();
                var pads = Ints(n, "pads") ?? new long[2 * (x.Length - 2)];
                var dil = Ints(n, "dilations") ?? Enumerable.Repeat(1L, x.Length - 2).ToArray();
                var o = new long[x.Length];
                o[0] = x[0];
                o[1] = w[0];
                for (int d = 0; d < x.Length - 2; d++)
                    o[d + 2] = (x[d + 2] + pads[d] + pads[d + x.Length - 2] - dil[d] * (w[d + 2] - 1) - 1) / strides[d] + 1;
                Out(o);
                break;
            case "MatMul" or "DynamicQuantizeMatMul":
                var a = In(0);
                var b = In(1);
                var batch = Broadcast(a[..^2], b.Length >= 2 ? b[..^2] : []);
                Out([.. batch, a[^2], b[^1]]);
                break;
            case "Gemm":
                var ga = In(0);
                var gb = In(1);
                Out([Attr(n, "transA") == 1 ? ga[1] : ga[0], Attr(n, "transB") == 1 ? gb[0] : gb[1]]);
                break;
            case "Reshape":
                var src = In(0);
                var target = v[n.Input[1]].ToArray();
                for (int i = 0; i < target.Length; i++) if (target[i] == 0) target[i] = src[i];
                int unknown = Array.IndexOf(target, -1L);
                if (unknown >= 0) target[unknown] = Product(src) / Product(target.Where(d => d != -1));
                Out(target);
                if (v.TryGetValue(n.Input[0], out var rv)) v[n.Output[0]] = rv;
                break;
            case "Transpose":
                var ti = In(0);
                var perm = Ints(n, "perm") ?? Enumerable.Range(0, ti.Length).Reverse().Select(i => (long)i).ToArray();
                Out(perm.Select(p => ti[p]).ToArray());
                break;
            case "Concat":
                var parts = n.Input.Select(i => s[i]).ToArray();
                long axis = Norm(Attr(n, "axis") ?? 0, parts[0].Length);
                var c = parts[0].ToArray();
                c[axis] = parts.Sum(p => p[axis]);
                Out(c);
                if (n.Input.All(v.ContainsKey)) v[n.Output[0]] = n.Input.SelectMany(i => v[i]).ToArray();
                break;
            case "Split":
                var si = In(0);
                long sa = Norm(Attr(n, "axis") ?? 0, si.Length);
                long[] sizes = n.Input.Count > 1 && n.Input[1].Length > 0 ? v[n.Input[1]]
                    : Ints(n, "split") ?? Enumerable.Repeat(si[sa] / n.Output.Count, n.Output.Count).ToArray();
                for (int i = 0; i < n.Output.Count; i++)
                {
                    var part = si.ToArray();
                    part[sa] = sizes[i];
                    Out(part, i);
                }
                break;
            case "Slice":
                var sl = In(0).ToArray();
                var starts = v[n.Input[1]];
                var ends = v[n.Input[2]];
                var axes = n.Input.Count > 3 && n.Input[3].Length > 0 ? v[n.Input[3]] : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
                var steps = n.Input.Count > 4 && n.Input[4].Length > 0 ? v[n.Input[4]] : Enumerable.Repeat(1L, starts.Length).ToArray();
                long[]? sliceValues = v.TryGetValue(n.Input[0], out var full) && sl.Length == 1 ? full : null;
                for (int i = 0; i < axes.Length; i++)
                {
                    long ax = Norm(axes[i], sl.Length), dim = sl[ax];
                    long b0 = Clamp(starts[i] < 0 ? starts[i] + dim : starts[i], 0, dim);
                    long e0 = Clamp(ends[i] < 0 ? ends[i] + dim : ends[i], 0, dim);
                    long len = Math.Max(0, (e0 - b0 + steps[i] - 1) / steps[i]);
                    if (sliceValues is not null) sliceValues = sliceValues.Skip((int)b0).Take((int)len).ToArray();
                    sl[ax] = len;
                }
                Out(sl);
                if (sliceValues is not null) v[n.Output[0]] = sliceValues;
                break;
            case "Gather":
                var data = In(0);
                var idx = In(1);
                long gx = Norm(Attr(n, "axis") ?? 0, data.Length);
                Out([.. data[..(int)gx], .. idx, .. data[((int)gx + 1)..]]);
                if (v.TryGetValue(n.Input[0], out var gd) && v.TryGetValue(n.Input[1], out var gi))
                    v[n.Output[0]] = gi.Select(i => gd[i < 0 ? i + gd.Length : i]).ToArray();
                break;
            case "GatherND":
                var gnd = In(0);
                var gni = In(1);
                long bd = Attr(n, "batch_dims") ?? 0;
                Out([.. gni[..^1], .. gnd[(int)(bd + gni[^1])..]]);
                break;
            case "Unsqueeze":
                var ui = In(0).ToList();
                var uaxes = n.Input.Count > 1 ? v[n.Input[1]] : Ints(n, "axes")!;
                int rank = ui.Count + uaxes.Length;
                foreach (var ua in uaxes.Select(a2 => Norm(a2, rank)).Order()) ui.Insert((int)ua, 1);
                Out(ui.ToArray());
                if (v.TryGetValue(n.Input[0], out var uv)) v[n.Output[0]] = uv;
                break;
            case "Squeeze":
                var qi = In(0);
                var qaxes = n.Input.Count > 1 ? v[n.Input[1]].Select(a2 => Norm(a2, qi.Length)).ToHashSet()
                    : Enumerable.Range(0, qi.Length).Where(i => qi[i] == 1).Select(i => (long)i).ToHashSet();
                Out(qi.Where((_, i) => !qaxes.Contains(i)).ToArray());
                if (v.TryGetValue(n.Input[0], out var qv)) v[n.Output[0]] = qv;
                break;
            case "Expand":
                Out(Broadcast(In(0), v[n.Input[1]]));
                break;
            case "Resize":
                var ri = In(0);
                if (n.Input.Count > 3 && n.Input[3].Length > 0) Out(v[n.Input[3]]);
                else
                {
                    var scales = f[n.Input[2]];
                    Out(ri.Select((d, i) => (long)Math.Floor(d * scales[i])).ToArray());
                }
                break;
            case "ReduceMean" or "ReduceSum" or "ReduceMax" or "ArgMax":
                var ri2 = In(0);
                var raxes = op == "ArgMax" ? [Attr(n, "axis") ?? 0] : n.Input.Count > 1 ? v[n.Input[1]] : Ints(n, "axes") ?? Enumerable.Range(0, ri2.Length).Select(i => (long)i).ToArray();
                var rset = raxes.Select(a2 => Norm(a2, ri2.Length)).ToHashSet();
                bool keep = (Attr(n, "keepdims") ?? 1) == 1;
                Out(ri2.Select((d, i) => rset.Contains(i) ? (keep ? 1 : -1) : d).Where(d => d != -1).ToArray());
                break;
            case "Flatten":
                var fi = In(0);
                long fa = Norm(Attr(n, "axis") ?? 1, fi.Length);
                Out([Product(fi.Take((int)fa)), Product(fi.Skip((int)fa))]);
                break;
            case "ConstantOfShape":
                Out(v[n.Input[0]]);
                break;
            case "Range":
                var r0 = v[n.Input[0]][0];
                var r1 = v[n.Input[1]][0];
                var r2 = v[n.Input[2]][0];
                Out([Math.Max(0, (r1 - r0 + r2 - 1) / r2)]);
                break;
            default:
                throw new NotSupportedException(op);
        }
    }

    private static long Norm(long axis, int rank) => axis < 0 ? axis + rank : axis;
    private static long Clamp(long x, long lo, long hi) => Math.Min(Math.Max(x, lo), hi);
    private static long Product(IEnumerable<long> dims) => dims.Aggregate(1L, (p, d) => p * d);

    private static long[] Broadcast(long[] a, long[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long x = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            long y = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            r[i] = x == 1 ? y : x;
        }
        return r;
    }

    private static long[] Elementwise(long[] a, long[] b, string op)
    {
        int n = Math.Max(a.Length, b.Length);
        var r = new long[n];
        for (int i = 0; i < n; i++)
        {
            long x = a[a.Length == 1 ? 0 : i], y = b[b.Length == 1 ? 0 : i];
            r[i] = op switch { "Add" => x + y, "Sub" => x - y, "Mul" => x * y, _ => y == 0 ? 0 : x / y };
        }
        return r;
    }

    private static long? Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : null;
    private static long[]? Ints(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : null;

    private static float[]? FloatValues(TensorProto t)
    {
        long count = t.Dims.Aggregate(1L, (p, d) => p * d);
        if (count > 64 || (TensorProto.Types.DataType)t.DataType != TensorProto.Types.DataType.Float) return null;
        if (t.FloatData.Count > 0) return t.FloatData.ToArray();
        var raw = t.RawData.ToByteArray();
        return Enumerable.Range(0, raw.Length / 4).Select(i => BitConverter.ToSingle(raw, i * 4)).ToArray();
    }

    private static long[]? IntValues(TensorProto t)
    {
        long count = t.Dims.Aggregate(1L, (p, d) => p * d);
        if (count > 64) return null;
        var type = (TensorProto.Types.DataType)t.DataType;
        if (type == TensorProto.Types.DataType.Int64)
        {
            if (t.Int64Data.Count > 0) return t.Int64Data.ToArray();
            var raw = t.RawData.ToByteArray();
            return Enumerable.Range(0, raw.Length / 8).Select(i => BitConverter.ToInt64(raw, i * 8)).ToArray();
        }
        if (type == TensorProto.Types.DataType.Int32)
        {
            if (t.Int32Data.Count > 0) return t.Int32Data.Select(x => (long)x).ToArray();
            var raw = t.RawData.ToByteArray();
            return Enumerable.Range(0, raw.Length / 4).Select(i => (long)BitConverter.ToInt32(raw, i * 4)).ToArray();
        }
        return null;
    }
}
