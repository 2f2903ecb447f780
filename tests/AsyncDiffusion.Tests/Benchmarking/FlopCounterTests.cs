using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Tests.Benchmarking;

public class FlopCounterTests
{
    private static Dictionary<string, long[]> UNetInputs(int latent, int hidden) =>
        new() { ["sample"] = [1, 4, latent, latent], ["timestep"] = [], ["encoder_hidden_states"] = [1, 77, hidden] };

    [Fact]
    public void Sd15UNetAt512IsTheAnalytic803GFlop()
    {
        var graph = SyntheticModelWriter.UNetShapes(SyntheticPreset.Sd15);
        var count = FlopCounter.Count(graph, UNetInputs(64, 768));
        Assert.Equal(0, count.Unresolved);
        Assert.InRange(count.GFlop, 801, 805);
        Assert.InRange(FlopCounter.Count(graph, UNetInputs(32, 768)).GFlop, 179, 181);
        // Of its MatMuls, attention's products of two activations: self-attention 122 and cross-attention 4 GFLOP.
        Assert.InRange(count.Attention / 1e9, 125, 127);
        Assert.InRange((count.MatMul - count.Attention) / 1e9, 232, 235); // linear layers 233
    }

    // A MatMul between two activations is attention; one with a weight is a linear layer, also when the weight
    // reaches it through Identity (a shared weight), Cast or Transpose.
    [Fact]
    public void AttentionIsTheProductOfTwoActivationsNotOfAWeightPassedThroughOtherNodes()
    {
        using var g = new OnnxGraphBuilder("flops", new SeededWeights(1), half: false);
        var x = g.Input("x", global::Onnx.TensorProto.Types.DataType.Float, 1, 16, 8);
        var shared = g.Op("Identity", [g.Parameter("w", [8, 8], 0.1)]);
        var linear = g.Op("MatMul", [x, shared]);                                                             // 2·16·8·8
        var transposed = g.Op("MatMul", [linear, g.Op("Transpose", [g.Parameter("v", [8, 8], 0.1)], ("perm", new long[] { 1, 0 }))]);
        var scores = g.Op("MatMul", [transposed, g.Op("Transpose", [x], ("perm", new long[] { 0, 2, 1 }))]); // 2·16·8·16
        g.Output("y", scores, global::Onnx.TensorProto.Types.DataType.Float, 1, 16, 16);
        var count = FlopCounter.Count(g.Build("test").Graph, new Dictionary<string, long[]> { ["x"] = [1, 16, 8] });
        Assert.Equal(0, count.Unresolved);
        Assert.Equal(2.0 * 16 * 8 * 8 * 2 + 2.0 * 16 * 8 * 16, count.MatMul);
        Assert.Equal(2.0 * 16 * 8 * 16, count.Attention);
    }

    [Fact]
    public void FlopsScaleWithTheBatch()
    {
        var graph = SyntheticModelWriter.UNetShapes(SyntheticPreset.Tiny);
        var one = FlopCounter.Count(graph, UNetInputs(8, 32));
        var two = FlopCounter.Count(graph, new Dictionary<string, long[]> { ["sample"] = [2, 4, 8, 8], ["timestep"] = [], ["encoder_hidden_states"] = [2, 77, 32] });
        Assert.Equal(2 * one.Total, two.Total, 6);
    }

    [Fact]
    public void RealTorchExportsResolveCompletely()
    {
        string root = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial");
        var vae = FlopCounter.Count(Path.Combine(root, "vae_decoder", "model.onnx"), new Dictionary<string, long[]> { ["latent_sample"] = [1, 4, 16, 16] });
        var text = FlopCounter.Count(Path.Combine(root, "text_encoder", "model.onnx"), new Dictionary<string, long[]> { ["input_ids"] = [1, 77] });
        Assert.Equal(0, vae.Unresolved);
        Assert.Equal(0, text.Unresolved);
        Assert.True(vae.Conv > 0 && text.MatMul > 0);
    }

    [Fact]
    public void StructureReadsDropLargeWeightsButCountTheSameFlops()
    {
        string path = Path.Combine(SharedData.PathOf("data", "models", "pyke-tiny-sd-partial"), "vae_decoder", "model.onnx");
        var full = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var structure = OnnxStructureReader.Read(path, keepDataUpTo: 4096);

        Assert.Equal(full.Graph.Node.Count, structure.Graph.Node.Count);
        Assert.Equal(full.Graph.Initializer.Select(t => (t.Name, string.Join(",", t.Dims))), structure.Graph.Initializer.Select(t => (t.Name, string.Join(",", t.Dims))));
        Assert.Contains(full.Graph.Initializer, t => t.RawData.Length > 4096);
        Assert.All(structure.Graph.Initializer, t => Assert.True(t.RawData.Length <= 4096 && t.FloatData.Count * 4 <= 4096));
        Assert.True(structure.CalculateSize() < full.CalculateSize() / 4);

        var shapes = new Dictionary<string, long[]> { ["latent_sample"] = [1, 4, 16, 16] };
        Assert.Equal(FlopCounter.Count(full.Graph, shapes), FlopCounter.Count(structure.Graph, shapes));
    }

    [Fact]
    public void StructureReadOfATruncatedFileIsAClearModelError()
    {
        using var dir = new TempFolder();
        string source = Path.Combine(SharedData.PathOf("data", "models", "pyke-tiny-sd-partial"), "vae_decoder", "model.onnx");
        var bytes = File.ReadAllBytes(source);
        string path = Path.Combine(dir.Path, "model.onnx");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ModelFolderException>(() => OnnxStructureReader.Read(path));
        Assert.Contains("model.onnx", e.Message);
    }

    [Fact]
    public void Int8LayersCountAsTheFloatLayersTheyReplace()
    {
        var inputs = new Dictionary<string, long[]> { ["sample"] = [2, 4, 8, 8], ["timestep"] = [], ["encoder_hidden_states"] = [2, 77, 32] };
        var fp32 = FlopCounter.Count(Path.Combine(Models.TinyModels.Folder(), "unet", "model.onnx"), inputs);
        var int8 = FlopCounter.Count(Path.Combine(Quantization.QuantizedTinyModels.Folder, "unet", "model.onnx"), inputs);
        Assert.Equal(0, int8.Unresolved);
        Assert.Equal(fp32.Total, int8.Total, 6);
        Assert.Equal(0, fp32.Int8);
        // Everything but the attention products and the few float layers is int8.
        Assert.InRange(int8.Int8 / int8.Total, 0.8, 1.0);
    }
}
