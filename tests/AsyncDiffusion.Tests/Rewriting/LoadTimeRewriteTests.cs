using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Rewriting;

public class LoadTimeRewriteTests
{
    private static float[] Predict(UNet unet)
    {
        var sample = Enumerable.Range(0, 2 * 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray();
        var context = Enumerable.Range(0, 2 * 77 * 32).Select(i => MathF.Cos(i) / 4).ToArray();
        return unet.Predict(sample, [2, 4, 8, 8], [500.0, 500.0], context, [2, 77, 32]);
    }

    [Fact]
    public void AModelFolderLoadsWithItsAttentionFusedAndPredictsAsTheExportedGraph()
    {
        using var fused = ModelFolder.Open(TinyModels.Folder(), SessionSettings.Default);
        using var exported = ModelFolder.Open(TinyModels.Folder(), SessionSettings.Default with { FuseAttention = false });

        var unetLoad = fused.Loads.Single(l => l.Component == "unet");
        Assert.Equal(8, unetLoad.FusedAttentions);
        Assert.Equal(1, fused.Loads.Single(l => l.Component == "vae_decoder").FusedAttentions);
        Assert.Equal(0, fused.Loads.Single(l => l.Component == "text_encoder").FusedAttentions); // causal mask: left as exported
        Assert.All(exported.Loads, l => Assert.Equal(0, l.FusedAttentions));
        Assert.All(fused.Loads, l => Assert.Equal(ModelLoadSource.Direct, l.Source));

        var expected = Predict(exported.UNet);
        Assert.True(GraphRuns.RelativeError(expected, Predict(fused.UNet)) < 1e-5);
    }

    [Fact]
    public void TheCacheSavesTheRewrittenGraphOnceAndAWarmLoadReportsItsFusedAttention()
    {
        using var cache = new TempFolder();
        string unetFolder = Path.Combine(TinyModels.Folder(), "unet");
        var settings = new SessionSettings { OptimizedModelCache = cache.Path };

        float[] cold, warm;
        using (var unet = UNet.Load(unetFolder, settings))
        {
            Assert.Equal(ModelLoadSource.Optimised, unet.Model.Load!.Source);
            Assert.Equal(8, unet.Model.Load.FusedAttentions);
            cold = Predict(unet);
        }
        string saved = Path.Combine(Assert.Single(Directory.GetDirectories(cache.Path)), "model.onnx");
        var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(saved)).Graph;
        Assert.Equal(8, graph.Node.Count(n => n.OpType == AttentionFusion.Operator));
        Assert.DoesNotContain(graph.Node, n => n.OpType == "Softmax");

        using (var unet = UNet.Load(unetFolder, settings))
        {
            Assert.Equal(ModelLoadSource.CacheHit, unet.Model.Load!.Source);
            Assert.Equal(8, unet.Model.Load.FusedAttentions);
            warm = Predict(unet);
        }
        Assert.True(GraphRuns.RelativeError(cold, warm) < 1e-6);

        // Attention as exported is another entry: the rewrite is part of the key.
        string file = Path.Combine(unetFolder, "model.onnx");
        Assert.NotEqual(OptimizedModelCache.Key(file, settings), OptimizedModelCache.Key(file, settings with { FuseAttention = false }));
    }

    [Fact]
    public void AModelWithInlineWeightsIsRewrittenWithItsWeightsReadFromItsOwnFile()
    {
        // pyke's VAE decoder keeps every weight inside model.onnx; the rewritten graph refers to them there.
        string path = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", "vae_decoder", "model.onnx");
        var rewritten = LoadTimeRewrites.Rewrite(path, SessionSettings.Default, out var counts);
        Assert.Equal(new RewriteCounts(1, 0), counts); // torch 1.13 wrote GroupNorm as InstanceNormalization already
        Assert.NotNull(rewritten);
        Assert.True(rewritten!.Length < new FileInfo(path).Length / 4, $"the rewritten graph holds {rewritten.Length} bytes of the file's {new FileInfo(path).Length}");

        using var plain = OnnxModel.Open(path, SessionSettings.Default with { FuseAttention = false });
        using var model = OnnxModel.Open(path, SessionSettings.Default);
        Assert.Equal(1, model.Load!.FusedAttentions);
        var latents = Enumerable.Range(0, 4 * 16 * 16).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        float[] Decode(OnnxModel m)
        {
            using var input = Tensors.Float(latents, [1, 4, 16, 16], Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float);
            using var output = m.Run(m.InputNames, [input], m.OutputNames);
            return Tensors.ToFloats(output[0]);
        }
        Assert.True(GraphRuns.RelativeError(Decode(plain), Decode(model)) < 1e-5);
    }
}
