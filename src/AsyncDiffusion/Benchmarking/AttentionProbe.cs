using System.Diagnostics;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace AsyncDiffusion.Benchmarking;

/// <summary>One attention shape measured three ways (milliseconds per call, median); null where a form does not apply.</summary>
public sealed record AttentionTiming(string Shape, int Batch, int Queries, int Keys, int Channels, int Heads,
    double ExportedMs, double MultiHeadMs, double? PackedMs)
{
    /// <summary>How many times faster the fused MultiHeadAttention is than the exported operators.</summary>
    public double MultiHeadSpeedup => ExportedMs / MultiHeadMs;
}

/// <summary>
/// Measures attention at Stable Diffusion 1.5's shapes (batch 2 as with CFG, the Q/K/V
/// projections included) three ways through ONNX Runtime: as exporters write it (MatMul,
/// Softmax, MatMul with the head splits), after <see cref="AttentionFusion"/>
/// (<c>com.microsoft.MultiHeadAttention</c>), and for self-attention as <c>com.microsoft.Attention</c>
/// with packed Q/K/V weights. The three run in turn, round after round, so a shared machine's
/// load affects them alike; each reports its median.
/// </summary>
public static class AttentionProbe
{
    private const int ContextChannels = 768, Heads = 8, Batch = 2;

    /// <summary>SD 1.5's attention levels at 512 and 256 px: (tokens, channels); cross-attention reads 77 text tokens.</summary>
    public static IReadOnlyList<(string Shape, int Queries, int Keys, int Channels)> SdShapes { get; } =
    [
        ("self, 512 px level 1", 4096, 4096, 320),
        ("cross, 512 px level 1", 4096, 77, 320),
        ("self, 512 px level 2", 1024, 1024, 640),
        ("self, 256 px level 1", 1024, 1024, 320),
        ("cross, 256 px level 1", 1024, 77, 320),
        ("self, 256 px level 2", 256, 256, 640),
    ];

    public static IReadOnlyList<AttentionTiming> Run(int threads, int rounds = 5, IReadOnlyList<(string Shape, int Queries, int Keys, int Channels)>? shapes = null)
    {
        var settings = new SessionSettings { IntraOpThreads = threads, AllowSpinning = true };
        var results = new List<AttentionTiming>();
        foreach (var (shape, queries, keys, channels) in shapes ?? SdShapes)
        {
            bool self = queries == keys;
            var exported = Build(channels, self, packed: false);
            var fusedGraph = OnnxGraph.FromBytes(exported, "probe");
            if (AttentionFusion.Apply(fusedGraph) != 1) throw new InvalidOperationException("The probe's attention was not fused.");
            var forms = new List<byte[]> { exported, fusedGraph.ToBytes() };
            if (self) forms.Add(Build(channels, self, packed: true));

            var inputs = new Dictionary<string, long[]> { ["x"] = [Batch, queries, channels] };
            if (!self) inputs["context"] = [Batch, keys, ContextChannels];
            var times = Measure(forms, inputs, settings, rounds);
            results.Add(new AttentionTiming(shape, Batch, queries, keys, channels, Heads, times[0], times[1], self ? times[2] : null));
        }
        return results;
    }

    // Medians in milliseconds, the forms taking turns within every round.
    private static double[] Measure(List<byte[]> forms, Dictionary<string, long[]> inputs, SessionSettings settings, int rounds)
    {
        var models = forms.Select(f => OnnxModel.FromBytes(f, "attention probe", settings)).ToList();
        var values = new List<OrtValue>();
        try
        {
            foreach (var (name, shape) in inputs)
            {
                var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
                for (int i = 0; i < data.Length; i++) data[i] = ((i * 7919) % 201 - 100) * 0.01f;
                values.Add(Tensors.Float(data, shape, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float));
            }
            var names = inputs.Keys.ToArray();
            var times = forms.Select(_ => new List<double>()).ToArray();
            for (int r = 0; r < rounds + 1; r++)
                for (int m = 0; m < models.Count; m++)
                {
                    var clock = Stopwatch.StartNew();
                    using (models[m].Run(names, values, [models[m].OutputNames[0]])) { }
                    if (r > 0) times[m].Add(clock.Elapsed.TotalMilliseconds); // round 0 warms up
                }
            return times.Select(t => t.Order().ElementAt(t.Count / 2)).ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
            foreach (var m in models) m.Dispose();
        }
    }

    /// <summary>Q/K/V projections and attention as our graph builder writes it, or (<paramref name="packed"/>) as one com.microsoft.Attention node.</summary>
    private static byte[] Build(int channels, bool self, bool packed)
    {
        using var g = new OnnxGraphBuilder("attention_probe", new SeededWeights(3), half: false);
        var ft = TensorProto.Types.DataType.Float;
        var x = g.Input("x", ft, "batch", "queries", channels);
        string y;
        if (packed)
        {
            var weights = g.Parameter("qkv.weight", [channels, 3 * channels], 1 / Math.Sqrt(channels));
            var bias = g.Filled("qkv.bias", [3 * channels], 0f);
            y = g.Node("Attention", "com.microsoft", [x, weights, bias], [g.Fresh("attention")], ("num_heads", (long)Heads))[0];
        }
        else
        {
            var context = self ? x : g.Input("context", ft, "batch", "keys", ContextChannels);
            y = new GraphLayers(g).AttentionCore(x, context, "attn", channels, self ? channels : ContextChannels, Heads);
        }
        g.Output("y", y, ft, "batch", "queries", channels);
        var model = g.Build("asyncdiffusion-probe");
        if (packed) model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return Google.Protobuf.MessageExtensions.ToByteArray(model);
    }
}
