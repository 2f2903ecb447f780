using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Tests.Models;

public class OptimizedModelCacheTests
{
    internal static float[] Predict(UNet unet)
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

    /// <summary>A copy of the tiny model's UNet in <paramref name="model"/>, its graph file, and settings caching into <paramref name="cache"/>.</summary>
    private static (string UNetFolder, string File, SessionSettings Settings) CachedTinyUNet(TempFolder model, TempFolder cache)
    {
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), model.Path);
        string unetFolder = Path.Combine(model.Path, "unet");
        return (unetFolder, Path.Combine(unetFolder, "model.onnx"), new SessionSettings { OptimizedModelCache = cache.Path });
    }

    // A changed model file makes a new entry; the old one can never be hit again and is deleted when the new one is
    // saved. Entries for other settings, and entries without a record (made by older versions), are kept.
    [Fact]
    public void ANewEntryReplacesTheOneMadeForTheModelFileBeforeItChanged()
    {
        using var cache = new TempFolder();
        using var model = new TempFolder();
        var (unetFolder, file, settings) = CachedTinyUNet(model, cache);
        var unfused = settings with { FuseAttention = false };
        string legacy = Directory.CreateDirectory(Path.Combine(cache.Path, "unet-000000000000000000000000")).FullName;
        File.WriteAllText(Path.Combine(legacy, "model.onnx"), "an entry of an older version");

        using (UNet.Load(unetFolder, settings)) { }
        using (UNet.Load(unetFolder, unfused)) { }
        string first = Path.Combine(cache.Path, OptimizedModelCache.Key(file, settings));
        string other = Path.Combine(cache.Path, OptimizedModelCache.Key(file, unfused));
        Assert.Equal(OptimizedModelCache.Record(file, settings), File.ReadAllText(Path.Combine(first, "source.txt")));
        Assert.Equal(3, Directory.GetDirectories(cache.Path).Length);

        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(1)); // the model changed
        float[] after;
        using (var unet = UNet.Load(unetFolder, settings)) after = Predict(unet);
        string second = Path.Combine(cache.Path, OptimizedModelCache.Key(file, settings));
        Assert.NotEqual(first, second);
        Assert.False(Directory.Exists(first));
        Assert.True(Directory.Exists(second) && Directory.Exists(other) && Directory.Exists(legacy));
        Assert.Equal(3, Directory.GetDirectories(cache.Path).Length);
        float[] warm;
        using (var unet = UNet.Load(unetFolder, settings)) warm = Predict(unet);
        for (int i = 0; i < after.Length; i++) Assert.Equal(after[i], warm[i], 1e-5f); // the new entry loads warm and computes the same
    }

    // An entry for the same model file and settings under another key with the same files is another version's
    // (another ONNX Runtime, another saved form): kept while that version uses it, deleted once unused for days.
    [Fact]
    public void AnotherVersionsEntryIsKeptWhileInUseAndDeletedOnceUnused()
    {
        using var cache = new TempFolder();
        using var model = new TempFolder();
        var (unetFolder, file, settings) = CachedTinyUNet(model, cache);
        string older = Directory.CreateDirectory(Path.Combine(cache.Path, "unet-ffffffffffffffffffffffff")).FullName;
        string record = Path.Combine(older, "source.txt");
        File.WriteAllText(record, OptimizedModelCache.Record(file, settings));

        using (UNet.Load(unetFolder, settings)) { }   // cold: saved beside it
        using (UNet.Load(unetFolder, settings)) { }   // warm
        Assert.True(Directory.Exists(older));         // used just now, by the other version

        File.SetLastWriteTimeUtc(record, DateTime.UtcNow - OptimizedModelCache.UnusedAfter - TimeSpan.FromHours(1));
        using (UNet.Load(unetFolder, settings)) { }   // any later load looks again
        Assert.False(Directory.Exists(older));
        Assert.Single(Directory.GetDirectories(cache.Path));
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

    // A warm load maps the packed copies ONNX Runtime saved; every one kept must sit where a mapped blob is aligned for
    // the kernels' vector loads, and the UNet's linear layers really keep theirs (the load-time saving is on).
    [Fact]
    public void SavedPackedWeightsAreKeptOnlyWhereTheyMapAligned()
    {
        using var cache = new TempFolder();
        using var model = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), model.Path);
        var settings = new SessionSettings { OptimizedModelCache = cache.Path };
        using (UNet.Load(Path.Combine(model.Path, "unet"), settings)) { }
        using (TextEncoder.Load(Path.Combine(model.Path, "text_encoder"), settings)) { }

        foreach (string entry in Directory.GetDirectories(cache.Path))
        {
            var graph = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(entry, "model.onnx")));
            var packed = graph.Graph.Initializer.SelectMany(t => t.ExternalData).Where(e => e.Key.StartsWith("prepacked")).ToList();
            Assert.All(packed, e => Assert.True(PrepackedWeightGuard.IsAligned(e.Value), $"{Path.GetFileName(entry)}: {e.Value}"));
            if (Path.GetFileName(entry).StartsWith("unet-")) Assert.NotEmpty(packed);
        }
    }

    [Fact]
    public void APackedCopyAtAnOffsetThatMapsMisalignedIsDroppedAndTheTensorPackedAtLoad()
    {
        static global::Onnx.TensorProto Weight(string name, string packed)
        {
            var t = new global::Onnx.TensorProto { Name = name, DataType = 1, DataLocation = global::Onnx.TensorProto.Types.DataLocation.External };
            t.Dims.Add(32);
            t.Dims.Add(32);
            t.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "location", Value = "model.onnx.data" });
            t.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "offset", Value = "0" });
            t.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "length", Value = "4096" });
            t.ExternalData.Add(new global::Onnx.StringStringEntryProto { Key = "prepacked_0", Value = packed });
            return t;
        }
        var model = new global::Onnx.ModelProto { Graph = new global::Onnx.GraphProto() };
        model.Graph.Initializer.Add(Weight("aligned", "MatMul+123|8192;4096;0"));
        model.Graph.Initializer.Add(Weight("shifted", "MatMul+456|6378276;4096;0"));
        model.Graph.Initializer.Add(Weight("second-blob-shifted", "MatMul+789|4096;64;0|4164;64;0"));
        model.Graph.Initializer.Add(Weight("unreadable", "MatMul+1"));

        var (kept, dropped) = PrepackedWeightGuard.Apply(model);

        Assert.Equal((1, 3), (kept, dropped));
        Assert.Contains(model.Graph.Initializer[0].ExternalData, e => e.Key == "prepacked_0");
        foreach (var t in model.Graph.Initializer.Skip(1))
        {
            Assert.DoesNotContain(t.ExternalData, e => e.Key.StartsWith("prepacked"));
            Assert.Equal("4096", t.ExternalData.Single(e => e.Key == "length").Value); // the tensor's own data stays
        }
    }
}
