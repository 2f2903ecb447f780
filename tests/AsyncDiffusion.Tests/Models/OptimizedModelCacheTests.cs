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
}
