using System.Diagnostics;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Benchmarking;

/// <summary>This machine's measured peak for Stable Diffusion's heavy operators through ONNX Runtime.</summary>
public sealed record ProbeResult(int Threads, double MatMulGflops, double Conv3x3Gflops)
{
    /// <summary>The yardstick for "% of peak": the faster of MatMul and Conv.</summary>
    public double PeakGflops => Math.Max(MatMulGflops, Conv3x3Gflops);

    /// <summary>Fused self-attention (<c>com.microsoft.MultiHeadAttention</c>, 4096 tokens) when measured.</summary>
    public double? AttentionGflops { get; init; }

    /// <summary>The cores' own fp32 FMA rate on these threads, when measured: what the operators' rates are read against.</summary>
    public FmaCeiling? Ceiling { get; init; }

    /// <summary>
    /// What the rates say about this machine, a sentence a line: the ceiling, whether the threads
    /// had a core each, and the share of the ceiling each operator reached. Empty without a ceiling.
    /// </summary>
    public IReadOnlyList<string> Findings()
    {
        if (Ceiling is not { } c) return [];
        var lines = new List<string>
        {
            string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"fp32 FMA ceiling ({c.VectorBits}-bit, registers only): {c.OneThreadGflops:F0} GFLOP/s on 1 thread, {c.Gflops:F0} on {c.Threads} ({c.Scaling:F2} threads' worth)."),
        };
        // The same loop at different moments: a wide spread means something else takes the cores now and then.
        if (c.LowestGflops > 0 && c.HighestGflops / c.LowestGflops > 1.25)
            lines.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The ceiling moved between {c.LowestGflops:F0} and {c.HighestGflops:F0} GFLOP/s during the probe: the cores are shared with other work (other processes, or other tenants of a virtual machine), so rates taken at different moments differ by as much; compare runs measured in turns."));
        // A thread short of a core's worth: the threads share cores, and every multi-threaded rate is lower for it.
        else if (c.Threads > 1 && c.Scaling < 0.85 * c.Threads)
            lines.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{c.Threads} threads delivered {c.Scaling:F2} threads' worth of arithmetic: they do not have a core each (hyper-threads of one core, or cores other work takes), so every rate here is lower for it."));
        if (c.Gflops > 0)
        {
            string attention = AttentionGflops is double a ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $", {100 * a / c.Gflops:F0} % with attention") : "";
            lines.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"ONNX Runtime reached {100 * Conv3x3Gflops / c.Gflops:F0} % of the ceiling with Conv, {100 * MatMulGflops / c.Gflops:F0} % with MatMul{attention}; the rest is memory traffic, packing and the threads waiting for each other."));
        }
        return lines;
    }

    /// <summary>
    /// The measured rate of an operator's kind, for the per-operator roofline: convolutions at
    /// Conv's, products with weights at MatMul's, fused attention at attention's (MatMul's when
    /// not measured); any other operator with FLOPs (int8 kernels) at <see cref="PeakGflops"/>.
    /// </summary>
    public double RateFor(string opType) => opType switch
    {
        "Conv" or "FusedConv" or "NchwcConv" => Conv3x3Gflops,
        "MatMul" or "FusedMatMul" or "Gemm" => MatMulGflops,
        "MultiHeadAttention" or "Attention" => AttentionGflops ?? MatMulGflops,
        _ => PeakGflops,
    };
}

/// <summary>
/// Measures MatMul (4096 rows through 320→1280→320→1280→320, constant weights: a feed-forward
/// pair twice), 3×3 convolution (four 320→320 in a row on 64×64) and fused self-attention
/// (2 × 4096 tokens × 320 channels, 8 heads: SD 1.5's largest) at SD's shapes through ONNX
/// Runtime at a given thread count: median of timed runs after warm-up. Chains, as in the
/// network: a lone operator also times the layout changes ONNX Runtime puts around it
/// (blocked-channel reorders for a convolution) and the threads' start; measured in turns on
/// the 2-core host, lone operators read 7–38 % under these chains and under the UNet's own
/// convolutions, which made the roofline look better than it was. Also the cores' own FMA
/// ceiling (<see cref="FmaCeiling"/>), which says whether a low reading is the machine's or the kernels'.
/// </summary>
public static class MachineProbe
{
    internal const int Chain = 4;

    public static ProbeResult Run(int threads, int repeats = 7)
    {
        int used = threads > 0 ? threads : Environment.ProcessorCount;
        double matmul, conv, attention;
        using (var chains = new ProbeChains(used))
        {
            // Each kind in its own block (two warm-up runs, then the timed ones): a chain right after another
            // session's run shares the cores with that session's still-spinning threads.
            double Median(int chain, int timed)
            {
                ProbeChains.Settle();
                chains.Rate(chain);
                chains.Rate(chain);
                return SampleStatistics.Median(Enumerable.Range(0, timed).Select(_ => chains.Rate(chain)));
            }
            matmul = Median(ProbeChains.MatMul, repeats);
            conv = Median(ProbeChains.Conv, repeats);
            attention = Median(ProbeChains.Attention, Math.Max(1, repeats / 2)); // ≈ 43 GFLOP a call: fewer keep the probe within seconds
        }
        ProbeChains.Settle();
        return new ProbeResult(used, matmul, conv)
        {
            AttentionGflops = attention,
            Ceiling = FmaCeiling.Measure(used, Math.Max(1, (repeats + 1) / 2)),
        };
    }

    internal static byte[] BuildMatMul()
    {
        using var g = new OnnxGraphBuilder("probe_matmul", new SeededWeights(1), half: false);
        var y = g.Input("a", global::Onnx.TensorProto.Types.DataType.Float, 4096, 320);
        for (int i = 0; i < Chain; i++)
            y = g.Op("MatMul", [y, i % 2 == 0 ? g.Parameter($"up{i}", [320, 1280], 0.05) : g.Parameter($"down{i}", [1280, 320], 0.05)]);
        g.Output("y", y, global::Onnx.TensorProto.Types.DataType.Float, 4096, Chain % 2 == 0 ? 320 : 1280);
        return g.ToBytes("asyncdiffusion-probe");
    }

    internal static byte[] BuildAttention()
    {
        using var g = new OnnxGraphBuilder("probe_attention", new SeededWeights(1), half: false);
        var x = g.Input("x", global::Onnx.TensorProto.Types.DataType.Float, 2, 4096, 320);
        var y = g.Node(Onnx.Graphs.Rewriting.AttentionFusion.Operator, Onnx.Graphs.Rewriting.AttentionFusion.Domain, [x, x, x], ["attended"], ("num_heads", 8L))[0];
        g.Output("y", y, global::Onnx.TensorProto.Types.DataType.Float, 2, 4096, 320);
        var model = g.Build("asyncdiffusion-probe");
        model.OpsetImport.Add(new global::Onnx.OperatorSetIdProto { Domain = Onnx.Graphs.Rewriting.AttentionFusion.Domain, Version = 1 });
        return Google.Protobuf.MessageExtensions.ToByteArray(model);
    }

    internal static byte[] BuildConv()
    {
        using var g = new OnnxGraphBuilder("probe_conv", new SeededWeights(1), half: false);
        var y = g.Input("x", global::Onnx.TensorProto.Types.DataType.Float, 1, 320, 64, 64);
        var layers = new GraphLayers(g);
        for (int i = 0; i < Chain; i++) y = layers.Conv(y, $"conv{i}", 320, 320, 3);
        g.Output("y", y, global::Onnx.TensorProto.Types.DataType.Float, 1, 320, 64, 64);
        return g.ToBytes("asyncdiffusion-probe");
    }
}

/// <summary>
/// The probe's three chains (MatMul, Conv, fused attention) loaded once, so they can be timed
/// again and again between other work: one round times each once and gives its rates.
/// </summary>
internal sealed class ProbeChains : IDisposable
{
    private readonly List<(OnnxModel Model, string Input, long[] Shape, float[] Data, double Flops)> _chains = [];
    private readonly int _threads;

    /// <param name="threads">Intra-op threads (0: one per logical processor, as the engine's default; ONNX Runtime's own default is one per physical core).</param>
    public ProbeChains(int threads)
    {
        _threads = threads > 0 ? threads : Environment.ProcessorCount;
        var settings = new SessionSettings { IntraOpThreads = _threads, AllowSpinning = true };
        try
        {
            Add(settings, MachineProbe.BuildMatMul(), "a", [4096, 320], MachineProbe.Chain * 2.0 * 4096 * 320 * 1280);
            Add(settings, MachineProbe.BuildConv(), "x", [1, 320, 64, 64], MachineProbe.Chain * 2.0 * 320 * 64 * 64 * 320 * 9);
            Add(settings, MachineProbe.BuildAttention(), "x", [2, 4096, 320], OperatorProfile.Flops("MultiHeadAttention", [[2, 4096, 320]], [[2, 4096, 320]]));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Add(SessionSettings settings, byte[] model, string input, long[] shape, double flops)
    {
        var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < data.Length; i++) data[i] = (i % 17) * 0.01f;
        _chains.Add((OnnxModel.FromBytes(model, "probe", settings), input, shape, data, flops));
    }

    public const int MatMul = 0, Conv = 1, Attention = 2;

    /// <summary>One run of one chain, in GFLOP/s.</summary>
    public double Rate(int chain)
    {
        var (model, input, shape, data, flops) = _chains[chain];
        using var value = Tensors.Float(data, shape, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float);
        var clock = Stopwatch.StartNew();
        using (model.Run([input], [value], [model.OutputNames[0]])) { }
        return flops / clock.Elapsed.TotalSeconds / 1e9;
    }

    /// <summary>
    /// Each chain run twice and timed the second time, after a pause that lets the thread pool of
    /// whatever ran before (the previous chain, a UNet call) stop spinning: MatMul, Conv and
    /// attention rates of this moment, warm as the network's operators are.
    /// </summary>
    public ProbeResult TimeOnce()
    {
        var rates = new double[_chains.Count];
        for (int i = 0; i < _chains.Count; i++)
        {
            Settle();
            Rate(i);
            rates[i] = Rate(i);
        }
        return new ProbeResult(_threads, rates[MatMul], rates[Conv]) { AttentionGflops = rates[Attention] };
    }

    /// <summary>
    /// ONNX Runtime's pool threads spin for a while after a run before they sleep; a session run
    /// within that while shares the cores with them (measured: a chain right after another read up
    /// to half its rate). An idle pause outlasts the spinning.
    /// </summary>
    public static void Settle() => Thread.Sleep(100);

    public void Dispose()
    {
        foreach (var chain in _chains) chain.Model.Dispose();
        _chains.Clear();
    }
}
