using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Tests.Models;

public class OptimizedModelCacheTests
{
    private static float[] Predict(UNet unet)
    {
        var sample = Enumerable.Range(0, 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray();
        var context = Enumerable.Range(0, 77 * 32).Select(i => MathF.Cos(i) / 4).ToArray();
        return unet.Predict(sample, [1, 4, 8, 8], [500.0], context, [1, 77, 32]);
    }

    [Fact]
    public void TheSecondLoadUsesTheSavedGraphAndGivesTheSameOutputs()
    {
        using var cache = new TempFolder();
        using var model = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), model.Path);
        string unetFolder = Path.Combine(model.Path, "unet");
        var settings = new SessionSettings { OptimizedModelCache = cache.Path };

        float[] plain;
        using (var unet = UNet.Load(unetFolder, SessionSettings.Default)) plain = Predict(unet);
        float[] cold;
        using (var unet = UNet.Load(unetFolder, settings)) cold = Predict(unet);
        var entries = Directory.GetDirectories(cache.Path);
        Assert.Single(entries);
        Assert.True(File.Exists(Path.Combine(entries[0], "model.onnx")));
        Assert.StartsWith("unet-", Path.GetFileName(entries[0]));
        float[] warm;
        using (var unet = UNet.Load(unetFolder, settings)) warm = Predict(unet);
        Assert.Single(Directory.GetDirectories(cache.Path)); // reused, not written again

        Assert.Equal(plain, cold);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], warm[i], 1e-5f);
    }

    [Fact]
    public void AChangedModelFileOrOtherSettingsGetANewEntry()
    {
        using var model = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), model.Path);
        string file = Path.Combine(model.Path, "unet", "model.onnx");
        string all = OptimizedModelCache.Key(file, new SessionSettings());
        string extended = OptimizedModelCache.Key(file, new SessionSettings { Optimization = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED });
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(1));
        string touched = OptimizedModelCache.Key(file, new SessionSettings());
        Assert.Equal(3, new[] { all, extended, touched }.Distinct().Count());
        Assert.Equal(touched, OptimizedModelCache.Key(file, new SessionSettings { IntraOpThreads = 1 })); // threads do not change the graph
    }

    // Every component of a model, loaded cold (optimised and saved) and then warm from its entry, computes what the
    // uncached session computes, and the warm load really is a cache hit (a failing entry is silently rebuilt).
    [Theory]
    [InlineData("text_encoder")]
    [InlineData("vae_decoder")]
    [InlineData("vae_encoder")]
    public void EachComponentLoadsWarmFromItsEntryAndComputesTheSame(string component)
    {
        using var cache = new TempFolder();
        using var model = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), model.Path);
        string folder = Path.Combine(model.Path, component);
        var cached = new SessionSettings { OptimizedModelCache = cache.Path };
        (float[] Values, ModelLoadSource? Source) Run(SessionSettings settings)
        {
            switch (component)
            {
                case "text_encoder":
                    int[] ids = [49406, 320, 1125, 539, 320, .. Enumerable.Repeat(49407, 72)];
                    using (var encoder = TextEncoder.Load(folder, settings)) return (encoder.Encode(ids, 1), encoder.Model.Load?.Source);
                case "vae_decoder":
                    using (var decoder = VaeDecoder.Load(folder, settings, 0.18215))
                        return (decoder.Decode(Enumerable.Range(0, 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray(), [1, 4, 8, 8]).Image, decoder.Model.Load?.Source);
                default:
                    using (var encoder = VaeEncoder.Load(folder, settings, 0.18215))
                        return (encoder.Encode(Enumerable.Range(0, 3 * 64 * 64).Select(i => MathF.Cos(i) * 0.5f).ToArray(), [1, 3, 64, 64]).Values, encoder.Model.Load?.Source);
            }
        }
        float[] plain = Run(SessionSettings.Default).Values;
        var (cold, coldSource) = Run(cached);
        var (warm, warmSource) = Run(cached);
        Assert.Equal(ModelLoadSource.Optimised, coldSource);
        Assert.Equal(ModelLoadSource.CacheHit, warmSource);
        Assert.Single(Directory.GetDirectories(cache.Path));
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.Equal(plain[i], cold[i], 1e-4f);
            Assert.Equal(plain[i], warm[i], 1e-4f);
        }
    }
}
