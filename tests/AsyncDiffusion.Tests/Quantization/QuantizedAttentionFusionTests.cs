using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Tests.Rewriting;

namespace AsyncDiffusion.Tests.Quantization;

/// <summary>
/// int8 folders and fused attention together: DynamicQuantizeMatMul has absorbed the 1/√d scale
/// Mul into the query weights, so the fused attention must scale by 1 there, not by its default.
/// </summary>
public class QuantizedAttentionFusionTests
{
    [Fact]
    public void AnInt8UNetRunsItsAttentionFusedWithTheScaleItsQueriesAlreadyCarry()
    {
        string path = Path.Combine(QuantizedTinyModels.Folder, "unet", "model.onnx");
        var graph = OnnxGraph.Load(path);
        Assert.Contains(graph.Graph.Node, n => n.OpType == "DynamicQuantizeMatMul");
        Assert.Equal(8, AttentionFusion.Apply(graph));
        var fused = graph.Graph.Node.Where(n => n.OpType == AttentionFusion.Operator).ToList();
        // Self-attention's queries come from an int8 linear that absorbed the scale; cross-attention's too.
        Assert.All(fused, n => Assert.Equal(1f, n.Attribute.Single(a => a.Name == "scale").F));

        using var exported = ModelFolder.Open(QuantizedTinyModels.Folder, SessionSettings.Default with { FuseAttention = false });
        using var rewritten = ModelFolder.Open(QuantizedTinyModels.Folder, SessionSettings.Default);
        Assert.Equal(8, rewritten.Loads.Single(l => l.Component == "unet").FusedAttentions);
        var sample = Enumerable.Range(0, 2 * 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray();
        var context = Enumerable.Range(0, 2 * 77 * 32).Select(i => MathF.Cos(i) / 4).ToArray();
        var expected = exported.UNet.Predict(sample, [2, 4, 8, 8], [500.0, 500.0], context, [2, 77, 32]);
        var actual = rewritten.UNet.Predict(sample, [2, 4, 8, 8], [500.0, 500.0], context, [2, 77, 32]);
        // Activations are quantized per call: a last-bit difference may move one value to the next int8 step, so the bound is an int8 step, not float rounding (a wrong scale is off by O(1)).
        Assert.True(GraphRuns.RelativeError(expected, actual) < 1e-3, $"{GraphRuns.RelativeError(expected, actual):E2}");
    }
}
