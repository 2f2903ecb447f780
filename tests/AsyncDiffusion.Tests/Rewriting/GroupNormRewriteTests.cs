using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Rewriting;

public class GroupNormRewriteTests(ITestOutputHelper log)
{
    private const int Channels = 8, Groups = 4;

    // InstanceNormalization sums in another order than GroupNormalization's expanded body.
    private const double Rounding = 1e-5;

    public static TheoryData<long[]> Shapes() => [[2, Channels, 5, 6], [2, Channels, 7]];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void PerChannelGroupNormBecomesInstanceNormalizationWithTheSameOutputs(long[] shape)
    {
        var original = GroupNormGraph(shape.Length, opset: 21);
        var rewritten = Rewritten(original, expected: 1);
        Assert.Equal(0, GraphRuns.Count(rewritten, "GroupNormalization"));
        Assert.Equal(1, GraphRuns.Count(rewritten, "InstanceNormalization"));
        Assert.Equal(1, GraphRuns.Count(rewritten, "Mul") - GraphRuns.Count(original, "Mul")); // the per-channel scale follows
        AssertSameOutputs(original, rewritten, shape);
    }

    [Fact]
    public void PerGroupGroupNormOfOpset18FeedsItsScaleAndBiasToInstanceNormalization()
    {
        long[] shape = [2, Channels, 5, 6];
        var original = GroupNormGraph(shape.Length, opset: 18);
        var rewritten = Rewritten(original, expected: 1);
        var graph = ModelProto.Parser.ParseFrom(rewritten).Graph;
        var instance = Assert.Single(graph.Node, n => n.OpType == "InstanceNormalization");
        Assert.Equal(new[] { "norm.weight", "norm.bias" }, instance.Input.Skip(1));
        Assert.Equal(GraphRuns.Count(original, "Mul"), GraphRuns.Count(rewritten, "Mul"));
        AssertSameOutputs(original, rewritten, shape);
    }

    [Fact]
    public void AGroupNormWhoseScaleIsAGraphInputIsLeftAlone()
    {
        var graph = OnnxGraph.FromBytes(GroupNormGraph(4, opset: 21, scaleAsInput: true), "scale input");
        Assert.Equal(0, GroupNormRewrite.Apply(graph));
        Assert.Single(graph.Graph.Node, n => n.OpType == "GroupNormalization");
        Assert.DoesNotContain(graph.Graph.Node, n => n.OpType == "InstanceNormalization");
    }

    [Fact]
    public void AFloat16GraphIsLeftAlone()
    {
        var graph = OnnxGraph.FromBytes(GroupNormGraph(4, opset: 21, half: true), "fp16");
        Assert.Equal(0, GroupNormRewrite.Apply(graph));
        Assert.Single(graph.Graph.Node, n => n.OpType == "GroupNormalization");
    }

    [Fact]
    public void ScaleAndBiasInAnExternalDataFileStayThereAndOnnxRuntimeReadsThem()
    {
        const int channels = 512, groups = 32; // 2 KiB each: written to the external data file
        using var folder = new TempFolder();
        string path = Path.Combine(folder.Path, "model.onnx");
        using (var g = new OnnxGraphBuilder("groupnorm", new SeededWeights(5), half: false, externalDataPath: path + ".data"))
        {
            var x = g.Input("x", TensorProto.Types.DataType.Float, "batch", channels, "h", "w");
            var y = g.Op("GroupNormalization", [x, g.Parameter("norm.weight", [channels], Affine(channels, 0.5f, 0.25f)),
                g.Parameter("norm.bias", [channels], Affine(channels, -1f, 0.01f))], ("epsilon", 1e-6f), ("num_groups", groups));
            g.Output("y", y, TensorProto.Types.DataType.Float, "batch", channels, "h", "w");
            g.Save(path, "test");
        }

        var bytes = LoadTimeRewrites.Rewrite(path, SessionSettings.Default, out var counts);
        Assert.Equal(new RewriteCounts(0, 1), counts);
        var rewritten = ModelProto.Parser.ParseFrom(bytes!).Graph;
        Assert.All(rewritten.Initializer.Where(t => t.Name.StartsWith("norm.")), t => Assert.Equal(TensorProto.Types.DataLocation.External, t.DataLocation));
        Assert.Equal(2, rewritten.Node.Count(n => n.OpType == "Unsqueeze"));

        var shapes = new Dictionary<string, long[]> { ["x"] = [1, channels, 3, 4] };
        using var options = SessionSettings.Default.ToOptions();
        using var session = LoadTimeRewrites.Open(path, options, SessionSettings.Default, out _);
        using var exported = new InferenceSession(path);
        double error = GraphRuns.RelativeError(GraphRuns.Run(exported, shapes)[0], GraphRuns.Run(session, shapes)[0]);
        log.WriteLine($"external scale and bias: relative error {error:E2}");
        Assert.True(error < Rounding, $"{error:E2} from the exported graph");
    }

    [Fact]
    public void ASyntheticUNetLoadedThroughTheLoadTimeRewritesPredictsAsExported()
    {
        using var folder = new TempFolder();
        string root = Path.Combine(folder.Path, "model");
        ModelWriter.Write(root, SyntheticPreset.Tiny, new VariedNorms(new SeededWeights(3)));
        string path = Path.Combine(root, "unet", "model.onnx");
        int norms = OnnxStructureReader.Read(path).Graph.Node.Count(n => n.OpType == "GroupNormalization");
        Assert.True(norms > 0);

        // Both rewrites count their own nodes; the GroupNorm rewrite does not wait on attention fusion.
        LoadTimeRewrites.Rewrite(path, SessionSettings.Default, out var both);
        Assert.Equal(new RewriteCounts(8, norms), both);
        var settings = SessionSettings.Default with { FuseAttention = false };
        using var options = settings.ToOptions();
        using var rewritten = LoadTimeRewrites.Open(path, options, settings, out var counts);
        Assert.Equal(new RewriteCounts(0, norms), counts);
        Assert.All([settings, SessionSettings.Default], s => Assert.Contains("groupnorm", LoadTimeRewrites.Key(s))); // older cache entries lack it

        using var exported = new InferenceSession(path);
        var shapes = new Dictionary<string, long[]> { ["sample"] = [2, 4, 8, 8], ["timestep"] = [], ["encoder_hidden_states"] = [2, 77, 32] };
        double error = GraphRuns.RelativeError(GraphRuns.Run(exported, shapes)[0], GraphRuns.Run(rewritten, shapes)[0]);
        log.WriteLine($"UNet, {norms} GroupNorms rewritten: relative error {error:E2}");
        Assert.True(error < Rounding, $"{error:E2} from the exported UNet");
    }

    private byte[] Rewritten(byte[] original, int expected)
    {
        var graph = OnnxGraph.FromBytes(original, "groupnorm");
        Assert.Equal(expected, GroupNormRewrite.Apply(graph));
        var rewritten = graph.ToBytes();
        log.WriteLine($"nodes {GraphRuns.NodeCount(original)} → {GraphRuns.NodeCount(rewritten)}");
        return rewritten;
    }

    private void AssertSameOutputs(byte[] original, byte[] rewritten, long[] shape)
    {
        var shapes = new Dictionary<string, long[]> { ["x"] = shape };
        var expected = GraphRuns.Run(original, shapes)[0];
        var actual = GraphRuns.Run(rewritten, shapes)[0];
        double error = GraphRuns.RelativeError(expected, actual);
        log.WriteLine($"[{string.Join(", ", shape)}]: relative error {error:E2}, largest output {expected.Max(v => Math.Abs(v)):F2}");
        Assert.True(error < Rounding, $"{error:E2} from the original graph");
    }

    /// <summary>
    /// x [N, C, …] shifted per channel (so groups differ in mean and spread) → GroupNormalization with
    /// scale and bias per channel ([C], opset 21) or per group ([G], opsets 18–20).
    /// </summary>
    private static byte[] GroupNormGraph(int rank, long opset, bool half = false, bool scaleAsInput = false)
    {
        using var g = new OnnxGraphBuilder("groupnorm", new SeededWeights(5), half);
        object[] dims = rank == 4 ? ["batch", Channels, "h", "w"] : ["batch", Channels, "length"];
        var x = g.Input("x", g.FloatType, dims);
        long[] offsetShape = rank == 4 ? [Channels, 1, 1] : [Channels, 1];
        var shifted = g.Op("Add", [g.Op("Mul", [x, g.Float(3f)]), g.Parameter("offset", offsetShape, Affine(Channels, -2f, 0.7f))]);
        int affine = opset >= 21 ? Channels : Groups;
        var scale = scaleAsInput ? g.Input("scale", g.FloatType, affine) : g.Parameter("norm.weight", [affine], Affine(affine, 0.5f, 0.25f));
        var y = g.Op("GroupNormalization", [shifted, scale, g.Parameter("norm.bias", [affine], Affine(affine, -1f, 0.4f))],
            ("epsilon", 0.1f), ("num_groups", Groups)); // far from the default 1e-5, so a lost epsilon shows
        g.Output("y", y, g.FloatType, dims);
        var model = g.Build("test");
        model.OpsetImport.Single().Version = opset;
        return model.ToByteArray();
    }

    private static float[] Affine(int count, float first, float step) => Enumerable.Range(0, count).Select(i => first + step * i).ToArray();

    /// <summary>Seeded weights with the norms' scales and shifts drawn around their fill (1 and 0), so the per-channel affine counts.</summary>
    private sealed class VariedNorms(SeededWeights seeded) : IWeightSource
    {
        public float[] Values(ParameterSpec parameter) => parameter.Init.Fill is float fill
            ? seeded.Uniform(parameter.Name, parameter.ElementCount, 0.3).Select(v => v + fill).ToArray()
            : seeded.Values(parameter);
    }
}
