using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Tests.Models;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Rewriting;

public class AttentionFusionTests(ITestOutputHelper log)
{
    // Float rounding: the fused kernel sums in another order and normalises the softmax online.
    private const double Rounding = 1e-5;

    public static TheoryData<string, int> SyntheticComponents() => new()
    {
        { "unet", 2 },        // the tiny UNet: self- and cross-attention in one transformer block per attention level
        { "vae_decoder", 1 }, // single-head mid-block attention
    };

    [Theory]
    [MemberData(nameof(SyntheticComponents))]
    public void EveryAttentionOfTheSyntheticModelBecomesMultiHeadAttentionWithTheSameOutputs(string component, int least)
    {
        string path = Path.Combine(TinyModels.Folder(), component, "model.onnx");
        var original = OnnxGraph.Load(path).ToBytes();
        var graph = OnnxGraph.Load(path);
        int softmaxes = GraphRuns.Count(original, "Softmax");
        int fused = AttentionFusion.Apply(graph);
        var rewritten = graph.ToBytes();
        log.WriteLine($"{component}: {fused} of {softmaxes} attentions fused; nodes {GraphRuns.NodeCount(original)} → {GraphRuns.NodeCount(rewritten)}");
        Assert.True(fused >= least);
        Assert.Equal(softmaxes, fused);
        Assert.Equal(0, GraphRuns.Count(rewritten, "Softmax"));
        Assert.Equal(fused, GraphRuns.Count(rewritten, AttentionFusion.Operator));

        var shapes = Shapes(component);
        var expected = GraphRuns.Run(original, shapes);
        var actual = GraphRuns.Run(rewritten, shapes);
        for (int o = 0; o < expected.Length; o++)
        {
            double error = GraphRuns.RelativeError(expected[o], actual[o]);
            log.WriteLine($"output {o}: relative error {error:E2}");
            Assert.True(error < Rounding, $"{component} output {o}: {error:E2} from the original graph");
        }
    }

    public static TheoryData<string> TorchForms() => ["scaled_dot_product_attention", "scaled_dot_product_attention with a scale", "batched heads (baddbmm)"];

    [Theory]
    [MemberData(nameof(TorchForms))]
    public void TorchExportFormsBecomeMultiHeadAttentionWithTheSameOutputs(string form)
    {
        var original = form switch
        {
            "batched heads (baddbmm)" => TorchAttentionGraphs.BatchedHeads(),
            _ => TorchAttentionGraphs.ScaledDotProduct(explicitScale: form.EndsWith("scale")),
        };
        var graph = OnnxGraph.FromBytes(original, form);
        Assert.Equal(1, AttentionFusion.Apply(graph));
        var rewritten = graph.ToBytes();
        // What is left: the four projections and the fused node; head splits, scale arithmetic and Softmax are gone.
        Assert.Equal(4, GraphRuns.Count(rewritten, "MatMul"));
        Assert.Equal(1, GraphRuns.Count(rewritten, AttentionFusion.Operator));
        foreach (var op in new[] { "Softmax", "Reshape", "Transpose", "Shape", "Sqrt" }) Assert.Equal(0, GraphRuns.Count(rewritten, op));

        // Self-attention lengths and cross-attention lengths, batch 2.
        foreach (var (queries, keys) in new[] { (16, 16), (16, 7) })
        {
            var shapes = TorchAttentionGraphs.Shapes(2, queries, keys);
            double error = GraphRuns.RelativeError(GraphRuns.Run(original, shapes)[0], GraphRuns.Run(rewritten, shapes)[0]);
            log.WriteLine($"{form}, {queries} queries × {keys} keys: relative error {error:E2}");
            Assert.True(error < Rounding, $"{form}: {error:E2} from the original graph");
        }
    }

    [Fact]
    public void AttentionWhoseProbabilitiesAreAlsoAGraphOutputIsLeftAlone()
    {
        var graph = OnnxGraph.FromBytes(TorchAttentionGraphs.BatchedHeads(exposeScores: true), "exposed");
        Assert.Equal(0, AttentionFusion.Apply(graph));
        Assert.Equal(1, graph.Graph.Node.Count(n => n.OpType == "Softmax"));
    }

    public static TheoryData<string, int> PykeComponents() => new()
    {
        { "vae_decoder", 1 },  // old-style single-head mid attention (query/key/value/proj_attn), baddbmm, Casts
        { "vae_encoder", 1 },
        { "text_encoder", 0 }, // CLIP adds a causal mask to the scores: left alone
    };

    [Theory]
    [MemberData(nameof(PykeComponents))]
    public void TorchOneThirteenExportsAreRewrittenWhereTheyHoldPlainAttention(string component, int attentions)
    {
        string path = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", component, "model.onnx");
        var original = Quantization.PykeExportTests.Seeded(OnnxGraph.Load(path).ToBytes());
        var graph = OnnxGraph.FromBytes(original, component);
        Assert.Equal(attentions, AttentionFusion.Apply(graph));
        var rewritten = graph.ToBytes();
        Assert.Equal(GraphRuns.Count(original, "Softmax") - attentions, GraphRuns.Count(rewritten, "Softmax"));

        var shapes = component switch
        {
            "vae_decoder" => new Dictionary<string, long[]> { ["latent_sample"] = [1, 4, 32, 32] },
            "vae_encoder" => new() { ["sample"] = [1, 3, 64, 64] },
            _ => new() { ["input_ids"] = [1, 77] },
        };
        var expected = GraphRuns.Run(original, shapes);
        var actual = GraphRuns.Run(rewritten, shapes);
        for (int o = 0; o < expected.Length; o++)
        {
            double error = GraphRuns.RelativeError(expected[o], actual[o]);
            log.WriteLine($"{component} output {o}: relative error {error:E2}");
            Assert.True(error < Rounding, $"{component} output {o}: {error:E2} from the original graph");
        }
    }

    private static Dictionary<string, long[]> Shapes(string component) => component switch
    {
        "unet" => new() { ["sample"] = [2, 4, 8, 8], ["timestep"] = [], ["encoder_hidden_states"] = [2, 77, 32] },
        _ => new() { ["latent_sample"] = [1, 4, 8, 8] },
    };
}
