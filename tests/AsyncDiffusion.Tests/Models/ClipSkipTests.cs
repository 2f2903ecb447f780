using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Pipelines;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace AsyncDiffusion.Tests.Models;

/// <summary>
/// Clip skip N: the text encoder's hidden state N − 1 layers before the last, through the final
/// layer norm (A1111, ComfyUI), exposed by a graph rewrite. References are computed without the
/// rewrite: an encoder built with fewer layers (same weights by name), or a torch export's inner
/// tensor through a layer norm done by hand.
/// </summary>
public class ClipSkipTests
{
    private static readonly ClipTextConfig FourLayers = new(49408, 32, 4, 4, 64, 77, true);

    private static int[] Ids(ModelFolder model, string prompt) => model.Tokenizer.Encode(prompt).InputIds;

    // A text encoder folder holding only model.onnx, with the synthetic writer's seeded weights.
    private static string WriteEncoder(string dir, ClipTextConfig config, bool half = false)
    {
        Directory.CreateDirectory(dir);
        using var g = new OnnxGraphBuilder("text_encoder", new SeededWeights(5), half);
        ClipTextGraph.Build(g, config, ContractVintage.Optimum124);
        g.Save(Path.Combine(dir, "model.onnx"), "test");
        return dir;
    }

    [Fact]
    public void ClipSkipOneIsTodaysOutputExactly()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        var ids = Ids(model, "a lighthouse at dawn").Concat(Ids(model, "")).ToArray();
        var today = model.TextEncoder.Encode(ids, 2);
        Assert.Equal(today, model.TextEncoder.Encode(ids, 2, clipSkip: 1));
        var cached = new PromptCache(model, 8).Encode("a lighthouse at dawn", "", guidance: true, clipSkip: 1, new StageTimings(), default);
        Assert.Equal(today[(77 * 32)..], cached.Unconditional);
        Assert.Equal(today[..(77 * 32)], cached.Conditional);
        Assert.False(model.TextEncoder.IgnoresClipSkip);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void ClipSkipEqualsTheEncoderBuiltWithThatManyLayersFewer(int clipSkip)
    {
        using var dir = new TempFolder();
        using var full = TextEncoder.Load(WriteEncoder(Path.Combine(dir.Path, "full"), FourLayers), SessionSettings.Default);
        using var truncated = TextEncoder.Load(WriteEncoder(Path.Combine(dir.Path, "truncated"), FourLayers with { Layers = 4 - (clipSkip - 1) }), SessionSettings.Default);
        using var model = ModelFolder.Open(TinyModels.Folder());
        var ids = Ids(model, "an astronaut riding a horse").Concat(Ids(model, "oil painting")).ToArray();

        var skipped = full.Encode(ids, 2, clipSkip);
        var reference = truncated.Encode(ids, 2);
        Assert.Equal(4, full.ClipSkipLayers);
        AssertClose(reference, skipped, 1e-5f);
        Assert.True(MaxDifference(full.Encode(ids, 2), skipped) > 1e-2, "clip skip must change the states");
    }

    [Fact]
    public void HalfPrecisionEncodersGetClipSkipInTheirOwnPrecision()
    {
        using var dir = new TempFolder();
        using var full = TextEncoder.Load(WriteEncoder(Path.Combine(dir.Path, "full"), FourLayers, half: true), SessionSettings.Default);
        using var truncated = TextEncoder.Load(WriteEncoder(Path.Combine(dir.Path, "truncated"), FourLayers with { Layers = 3 }, half: true), SessionSettings.Default);
        Assert.Equal(TensorElementType.Float16, full.OutputType);
        using var model = ModelFolder.Open(TinyModels.Folder());
        var ids = Ids(model, "a red bicycle");
        AssertClose(truncated.Encode(ids, 1), full.Encode(ids, 1, clipSkip: 2), 1e-2f);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void ClipSkipOfARealTorchExportIsItsInnerHiddenStateThroughTheFinalLayerNorm(int clipSkip)
    {
        // pyke's tiny CLIP: torch.onnx 1.13, opset 15, LayerNorm decomposed (ReduceMean … Add), weights deduplicated through Identity nodes.
        string folder = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", "text_encoder");
        using var encoder = TextEncoder.Load(folder, SessionSettings.Default);
        Assert.Equal(5, encoder.ClipSkipLayers);
        var ids = Enumerable.Range(0, 77).Select(i => i == 0 ? 0 : i < 9 ? 100 + 37 * i : 1).ToArray();

        // Reference: the exporter's own tensor for the output of layer (5 − clip skip), 0-based, normalised here by hand.
        string layerOutput = $"/text_model/encoder/layers.{5 - clipSkip}/Add_1_output_0";
        var graph = OnnxGraph.Load(Path.Combine(folder, "model.onnx"));
        graph.ExposeAsOutputs([layerOutput]);
        float[] hidden;
        using (var session = OnnxModel.FromBytes(graph.ToBytes(), "pyke text encoder with an inner output", SessionSettings.Default))
        using (var input = Tensors.Ids(ids, [1, 77], TensorElementType.Int32))
        using (var outputs = session.Run(["input_ids"], [input], [layerOutput]))
            hidden = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var gamma = Weight(graph, "text_model.final_layer_norm.weight");
        var beta = Weight(graph, "text_model.final_layer_norm.bias");
        var reference = LayerNorm(hidden, gamma, beta, 1e-5f);

        AssertClose(reference, encoder.Encode(ids, 1, clipSkip), 1e-4f);
    }

    [Fact]
    public void ClipSkipBeyondTheEncodersLayersIsRefusedNamingTheRange()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        using var pipeline = new StableDiffusionPipeline(model);
        var e = Assert.Throws<AsyncDiffusionException>(() => pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 1, ClipSkip = 3 }));
        Assert.Contains("clip skip is 3; this model's text encoder has 2 layers, so expected 1 to 2", e.Message);
        e = Assert.Throws<AsyncDiffusionException>(() => pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 1, ClipSkip = 0 }));
        Assert.Contains("clip skip is 0", e.Message);
    }

    [Fact]
    public void AGraphWithoutTransformerLayersIsRefusedWithAMessage()
    {
        var graph = OnnxGraph.Load(SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", "vae_decoder", "model.onnx"));
        var e = Assert.Throws<ModelFolderException>(() => ClipSkipOutputs.Apply(graph, "sample"));
        Assert.Contains("clip skip needs a CLIP text encoder", e.Message);
    }

    [Fact]
    public void ClipSkipTwoChangesTheImageAndIsWrittenInTheInfotext()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        using var pipeline = new StableDiffusionPipeline(model);
        var request = new GenerationRequest { Prompt = "a castle", Steps = 3, Seed = 11 };
        var plain = pipeline.Generate(request).Images[0];
        var skipped = pipeline.Generate(request with { ClipSkip = 2 }).Images[0];
        Assert.NotEqual(plain.Image.Pixels, skipped.Image.Pixels);
        Assert.DoesNotContain("Clip skip", plain.Infotext);
        Assert.Contains("Seed: 11, Size: 64x64, Model: ", skipped.Infotext);
        Assert.Contains(", Clip skip: 2, RNG: CPU", skipped.Infotext);
    }

    [Fact]
    public void PromptCacheKeepsTheStatesOfEachClipSkipApart()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        var cache = new PromptCache(model, 8);
        var one = cache.Encode("a castle", "", guidance: false, clipSkip: 1, new StageTimings(), default);
        var two = cache.Encode("a castle", "", guidance: false, clipSkip: 2, new StageTimings(), default);
        Assert.Equal(model.TextEncoder.Encode(Ids(model, "a castle"), 1, clipSkip: 2), two.Conditional);
        Assert.NotEqual(one.Conditional, two.Conditional);
        Assert.Equal(2, cache.Misses);
        cache.Encode("a castle", "", guidance: false, clipSkip: 2, new StageTimings(), default);
        Assert.Equal(1, cache.Hits);
    }

    [Fact]
    public void OpenClipEncodersIgnoreClipSkipAsA1111Does()
    {
        using var dir = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder(), dir.Path);
        string config = Path.Combine(dir.Path, "text_encoder", "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"quick_gelu\"", "\"gelu\""));
        using var model = ModelFolder.Open(dir.Path);
        Assert.True(model.TextEncoder.IgnoresClipSkip);
        using var pipeline = new StableDiffusionPipeline(model);
        var request = new GenerationRequest { Prompt = "a castle", Steps = 2, Seed = 3 };
        var plain = pipeline.Generate(request).Images[0];
        var plan = GenerationPlan.Create(request with { ClipSkip = 2 }, model);
        Assert.Equal(1, plan.ClipSkip);
        var skipped = pipeline.Run(plan).Images[0];
        Assert.Equal(plain.Image.Pixels, skipped.Image.Pixels);
        Assert.DoesNotContain("Clip skip", skipped.Infotext);
    }

    private static float[] Weight(OnnxGraph graph, string name)
    {
        // torch.onnx shares equal weights: the name may be an Identity of another initializer.
        while (graph.Initializer(name) is null && graph.Producer(name) is { OpType: "Identity" } identity) name = identity.Input[0];
        return TensorData.Floats(graph.Initializer(name)!);
    }

    private static float[] LayerNorm(float[] x, float[] gamma, float[] beta, float eps)
    {
        int width = gamma.Length;
        var y = new float[x.Length];
        for (int row = 0; row < x.Length / width; row++)
        {
            var v = x.AsSpan(row * width, width);
            double mean = 0, variance = 0;
            foreach (var f in v) mean += f;
            mean /= width;
            foreach (var f in v) variance += (f - mean) * (f - mean);
            variance /= width;
            for (int i = 0; i < width; i++) y[row * width + i] = (float)((v[i] - mean) / Math.Sqrt(variance + eps) * gamma[i] + beta[i]);
        }
        return y;
    }

    private static double MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    private static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = MaxDifference(expected, actual);
        Assert.True(worst <= tolerance, $"largest difference {worst:G3}, allowed {tolerance:G3}");
    }
}
