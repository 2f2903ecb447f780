using System.Text.Json;

namespace AsyncDiffusion.Benchmarking;

/// <summary>Time spent in one operator type of one component, and the arithmetic rate it reached.</summary>
public sealed record OperatorTime(string Component, string OpType, int Calls, double Milliseconds, double Share, double GFlop)
{
    /// <summary>Achieved GFLOP/s, for operators whose FLOPs are counted (Conv, MatMul, Gemm, fused MatMul/attention); else null.</summary>
    public double? GFlopPerSecond => GFlop > 0 && Milliseconds > 0 ? GFlop / (Milliseconds / 1000) : null;

    /// <summary>
    /// Of <see cref="Milliseconds"/>, the time the calling thread had finished its share of each
    /// call and waited for the pool's other threads (ONNX Runtime's thread statistics): time a
    /// statically split kernel loses when one thread runs slower than the others.
    /// </summary>
    public double WaitMilliseconds { get; init; }

    public double WaitShare => Milliseconds > 0 ? WaitMilliseconds / Milliseconds : 0;
}

/// <summary>
/// Time one component spent in attention proper — the products of two activations (Q·Kᵀ and
/// P·V, batched MatMuls whose inputs both have rank 3 or more; linear layers read 2-D weights),
/// Softmax, and fused attention kernels — and its share of the component's kernel time.
/// </summary>
public sealed record AttentionTime(string Component, int Calls, double Milliseconds, double Share);

/// <summary>
/// One component's kernel time against a roofline: the time its counted FLOPs (Conv, MatMul,
/// Gemm, fused attention, int8 products) would take at <paramref name="PeakGflops"/>, the
/// machine's measured peak, as a share of all its kernel time (elementwise ops, normalisations
/// and layout conversions count as time with no FLOPs, which is what makes a graph miss its roofline).
/// The per-operator roofline takes each operator's FLOPs at the measured rate of its kind
/// (<see cref="ProbeResult.RateFor"/>: attention and MatMul run slower than Conv on the same cores).
/// </summary>
public sealed record RooflineShare(string Component, double KernelMilliseconds, double GFlop, double PeakGflops)
{
    public double IdealMilliseconds => GFlop / PeakGflops * 1000;
    public double Percent => KernelMilliseconds > 0 ? 100 * IdealMilliseconds / KernelMilliseconds : 0;

    /// <summary>Of the kernel time, how long the calling thread waited for the pool's other threads (see <see cref="OperatorTime.WaitMilliseconds"/>).</summary>
    public double WaitMilliseconds { get; init; }

    public double WaitShare => KernelMilliseconds > 0 ? WaitMilliseconds / KernelMilliseconds : 0;

    /// <summary>Each operator's FLOPs at its kind's measured rate, summed; null without the rates.</summary>
    public double? OperatorIdealMilliseconds { get; init; }

    public double? OperatorPercent => OperatorIdealMilliseconds is double ideal && KernelMilliseconds > 0 ? 100 * ideal / KernelMilliseconds : null;
}

/// <summary>
/// A summary of ONNX Runtime's operator profiles (the JSON traces <c>--profile</c> writes): time
/// per operator type and component, its share of the component's kernel time, and the FLOPs each
/// call did, computed from the input shapes ONNX Runtime recorded with it.
/// </summary>
public static class OperatorProfile
{
    public static IReadOnlyList<OperatorTime> Summarize(IEnumerable<(string Component, string File)> profiles) => Read(profiles).Operators;

    /// <summary>The operator summary and each component's time in attention proper.</summary>
    public static (IReadOnlyList<OperatorTime> Operators, IReadOnlyList<AttentionTime> Attention) Read(IEnumerable<(string Component, string File)> profiles)
    {
        var rows = new List<OperatorTime>();
        var attention = new List<AttentionTime>();
        foreach (var (component, file) in profiles)
        {
            var byOp = new Dictionary<string, (int Calls, double Us, double Flop, double WaitUs)>(StringComparer.Ordinal);
            int attentionCalls = 0;
            double attentionUs = 0;
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node") continue;
                if (!e.TryGetProperty("name", out var name) || name.GetString()?.EndsWith("_kernel_time", StringComparison.Ordinal) != true) continue;
                if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var opName)) continue;
                string op = opName.GetString() ?? "?";
                double us = e.TryGetProperty("dur", out var dur) ? dur.GetDouble() : 0;
                var inputs = Shapes(args, "input_type_shape");
                double flop = Flops(op, inputs, Shapes(args, "output_type_shape"));
                var (calls, total, flops, waits) = byOp.GetValueOrDefault(op);
                byOp[op] = (calls + 1, total + us, flops + flop, waits + CallerWait(args));
                if (IsAttention(op, inputs))
                {
                    attentionCalls++;
                    attentionUs += us;
                }
            }
            double componentUs = byOp.Values.Sum(v => v.Us);
            rows.AddRange(byOp.Select(kv => new OperatorTime(component, kv.Key, kv.Value.Calls, kv.Value.Us / 1000,
                componentUs > 0 ? kv.Value.Us / componentUs : 0, kv.Value.Flop / 1e9) { WaitMilliseconds = kv.Value.WaitUs / 1000 }));
            if (attentionCalls > 0) attention.Add(new AttentionTime(component, attentionCalls, attentionUs / 1000, componentUs > 0 ? attentionUs / componentUs : 0));
        }
        return (rows.OrderBy(r => r.Component, StringComparer.Ordinal).ThenByDescending(r => r.Milliseconds).ToArray(), attention);
    }

    /// <summary>Each component's kernel time against the roofline at the probe's peak and at its per-operator rates (see <see cref="RooflineShare"/>).</summary>
    public static IReadOnlyList<RooflineShare> Roofline(IEnumerable<OperatorTime> operators, ProbeResult probe) =>
        operators.GroupBy(o => o.Component, StringComparer.Ordinal)
            .Select(g => new RooflineShare(g.Key, g.Sum(o => o.Milliseconds), g.Sum(o => o.GFlop), probe.PeakGflops)
            {
                OperatorIdealMilliseconds = g.Sum(o => o.GFlop / probe.RateFor(o.OpType) * 1000),
                WaitMilliseconds = g.Sum(o => o.WaitMilliseconds),
            })
            .ToArray();

    private static bool IsAttention(string op, IReadOnlyList<long[]> inputs) => op switch
    {
        "MultiHeadAttention" or "Attention" or "Softmax" => true,
        "MatMul" or "FusedMatMul" => inputs.Count >= 2 && inputs[0].Length >= 3 && inputs[1].Length >= 3,
        _ => false,
    };

    /// <summary>
    /// Microseconds the calling thread spent waiting for the pool's other threads in one call:
    /// <c>thread_scheduling_stats.main_thread.Wait</c>, which ONNX Runtime records with each
    /// parallel kernel (absent for kernels that ran on the calling thread alone).
    /// </summary>
    private static double CallerWait(JsonElement args) =>
        args.TryGetProperty("thread_scheduling_stats", out var stats) && stats.ValueKind == JsonValueKind.Object
        && stats.TryGetProperty("main_thread", out var main) && main.ValueKind == JsonValueKind.Object
        && main.TryGetProperty("Wait", out var wait) && wait.ValueKind == JsonValueKind.Number
            ? wait.GetDouble()
            : 0;

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
            // Weights ONNX Runtime pre-packed at load are not in the recorded inputs: the activation and the output give the FLOPs.
            case "MatMul" or "FusedMatMul" or "MatMulInteger" or "DynamicQuantizeMatMul" or "MatMulIntegerToFloat" or "QLinearMatMul" or "Gemm"
                when inputs.Count >= 1 && outputs.Count >= 1:
            {
                var a = inputs[0];
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
