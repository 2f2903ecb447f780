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

    private static Dictionary<string, long[]> Shapes(string component) => component switch
    {
        "unet" => new() { ["sample"] = [2, 4, 8, 8], ["timestep"] = [], ["encoder_hidden_states"] = [2, 77, 32] },
        _ => new() { ["latent_sample"] = [1, 4, 8, 8] },
    };
}
