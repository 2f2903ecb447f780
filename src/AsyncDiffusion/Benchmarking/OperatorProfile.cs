using System.Text.Json;

namespace AsyncDiffusion.Benchmarking;

/// <summary>Time spent in one operator type of one component, and the arithmetic rate it reached.</summary>
public sealed record OperatorTime(string Component, string OpType, int Calls, double Milliseconds, double Share, double GFlop)
{
    /// <summary>Achieved GFLOP/s, for operators whose FLOPs are counted (Conv, MatMul, Gemm, fused MatMul/attention); else null.</summary>
    public double? GFlopPerSecond => GFlop > 0 && Milliseconds > 0 ? GFlop / (Milliseconds / 1000) : null;
}

/// <summary>
/// A summary of ONNX Runtime's operator profiles (the JSON traces <c>--profile</c> writes): time
/// per operator type and component, its share of the component's kernel time, and the FLOPs each
/// call did, computed from the input shapes ONNX Runtime recorded with it.
/// </summary>
public static class OperatorProfile
{
    public static IReadOnlyList<OperatorTime> Summarize(IEnumerable<(string Component, string File)> profiles)
    {
        var rows = new List<OperatorTime>();
        foreach (var (component, file) in profiles)
        {
            var byOp = new Dictionary<string, (int Calls, double Us, double Flop)>(StringComparer.Ordinal);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
                if (!e.TryGetProperty("name", out var name) || name.GetString()?.EndsWith("_kernel_time", StringComparison.Ordinal) != true) continue;
                if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var opName)) continue;
                string op = opName.GetString() ?? "?";
                double us = e.TryGetProperty("dur", out var dur) ? dur.GetDouble() : 0;
                double flop = Flops(op, Shapes(args, "input_type_shape"), Shapes(args, "output_type_shape"));
                var (calls, total, flops) = byOp.GetValueOrDefault(op);
                byOp[op] = (calls + 1, total + us, flops + flop);
            }
            double componentUs = byOp.Values.Sum(v => v.Us);
            rows.AddRange(byOp.Select(kv => new OperatorTime(component, kv.Key, kv.Value.Calls, kv.Value.Us / 1000,
                componentUs > 0 ? kv.Value.Us / componentUs : 0, kv.Value.Flop / 1e9)));
        }
        return rows.OrderBy(r => r.Component, StringComparer.Ordinal).ThenByDescending(r => r.Milliseconds).ToArray();
    }

    private static List<long[]> Shapes(JsonElement args, string property)
    {
        var shapes = new List<long[]>();
        if (!args.TryGetProperty(property, out var list) || list.ValueKind != JsonValueKind.Array) return shapes;
        foreach (var item in list.EnumerateArray())
            foreach (var typed in item.EnumerateObject()) // {"float": [dims]}
                shapes.Add(typed.Value.ValueKind == JsonValueKind.Array ? typed.Value.EnumerateArray().Select(d => d.GetInt64()).ToArray() : []);
        return shapes;
    }

    /// <summary>2 FLOPs per multiply-add, from the shapes of one call.</summary>
    internal static double Flops(string op, IReadOnlyList<long[]> inputs, IReadOnlyList<long[]> outputs)
    {
        static double Product(IEnumerable<long> dims) => dims.Aggregate(1.0, (a, b) => a * b);
        switch (op)
        {
            case "Conv" or "FusedConv" or "NchwcConv" or "QLinearConv" or "ConvInteger" when inputs.Count >= 2 && outputs.Count >= 1:
            {
                // weight [Cout, Cin/group, kh, kw] (NCHWc keeps Cout first too): each output element takes Cin/group·kh·kw multiply-adds.
                var w = inputs[op == "QLinearConv" ? 3 : 1];
                return w.Length >= 2 ? 2 * Product(outputs[0]) * Product(w.Skip(1)) : 0;
            }
            case "MatMul" or "FusedMatMul" or "MatMulInteger" or "DynamicQuantizeMatMul" or "MatMulIntegerToFloat" or "QLinearMatMul" or "Gemm"
                when inputs.Count >= 2 && outputs.Count >= 1:
            {
                var a = inputs[op == "QLinearMatMul" ? 0 : 0];
                int k = a.Length == 0 ? 1 : (int)a[^1];
                if (op == "Gemm" && a.Length == 2 && outputs[0].Length == 2 && outputs[0][0] != a[0]) k = (int)a[0]; // transA
                return 2 * Product(outputs[0]) * k;
            }
            case "MultiHeadAttention" or "Attention" when inputs.Count >= 1 && outputs.Count >= 1 && outputs[0].Length == 3:
            {
                // Q·Kᵀ and P·V: 2 · 2 · B · Sq · Sk · hidden, with Sk from the key input when given.
                var q = inputs[0];
                long sk = inputs.Count >= 2 && inputs[1].Length == 3 ? inputs[1][1] : q[1];
                return 4.0 * q[0] * q[1] * sk * outputs[0][2];
            }
            default:
                return 0;
        }
    }
}
