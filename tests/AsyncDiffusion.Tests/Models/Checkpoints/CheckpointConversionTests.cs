using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>
/// Checkpoints written with real names and layout from the synthetic model's own weights convert
/// back to that model: the same initializers, the same outputs.
/// </summary>
public class CheckpointConversionTests
{
    private const ulong Seed = 3;

    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    [InlineData("BF16")]
    public void ASingleFileOfTheSyntheticWeightsConvertsBackToTheSyntheticModel(string dtype)
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "tiny-fake.safetensors");
        FakeCheckpoints.WriteSingleFile(file, SyntheticPreset.Tiny, ModelFamily.Sd1, dtype, Seed);
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = file, Architecture = SyntheticPreset.Tiny },
            Path.Combine(dir.Path, "out"), new CheckpointCache(Path.Combine(dir.Path, "cache")));

        Assert.Equal(new CheckpointKind(ModelFamily.Sd1, 4, false), converted.Kind);
        Assert.Empty(converted.Warnings); // EMA copies, schedule buffers and position_ids are ignored, everything else used
        AssertSameModel(Reference(dir, SyntheticPreset.Tiny, dtype), converted.Folder);
    }

    [Fact]
    public void ASingleFileWithTheOpenClipTextTowerConvertsBackToTheSyntheticModel()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "tiny-sd2.safetensors");
        FakeCheckpoints.WriteSingleFile(file, FakeCheckpoints.TinySd2, ModelFamily.Sd2, "F16", Seed);
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = file, Architecture = FakeCheckpoints.TinySd2 },
            Path.Combine(dir.Path, "out"), new CheckpointCache(Path.Combine(dir.Path, "cache")));

        Assert.Equal(ModelFamily.Sd2, converted.Kind.Family);
        Assert.Empty(converted.Warnings); // text_projection, logit_scale and the block after the penultimate are ignored
        AssertSameModel(Reference(dir, FakeCheckpoints.TinySd2, "F16"), converted.Folder);
    }

    [Fact]
    public void ADiffusersFolderConvertsBackToTheSyntheticModel()
    {
        using var dir = new TempFolder();
        string source = Path.Combine(dir.Path, "tiny-diffusers");
        FakeCheckpoints.WriteDiffusersFolder(source, SyntheticPreset.Tiny, "BF16", Seed);
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = source }, Path.Combine(dir.Path, "out"),
            new CheckpointCache(Path.Combine(dir.Path, "cache")));

        Assert.True(converted.Kind.DiffusersFolder);
        Assert.Empty(converted.Warnings);
        AssertSameModel(Reference(dir, SyntheticPreset.Tiny, "BF16"), converted.Folder);
    }

    [Fact]
    public void TheSecondLoadComesFromTheCacheWithoutConverting()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "tiny.safetensors");
        FakeCheckpoints.WriteSingleFile(file, SyntheticPreset.Tiny, ModelFamily.Sd1, "F16", Seed);
        var cache = new CheckpointCache(Path.Combine(dir.Path, "cache"));
        var import = new CheckpointImport { Source = file, Architecture = SyntheticPreset.Tiny };
        var first = CheckpointConverter.Resolve(import, cache);
        var written = File.GetLastWriteTimeUtc(Path.Combine(first.Folder, "unet", "model.onnx"));
        var second = CheckpointConverter.Resolve(import, cache);

        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.Folder, second.Folder);
        Assert.StartsWith(cache.Root, first.Folder);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(second.Folder, "unet", "model.onnx")));
        // Another choice is another entry.
        var epsilon = CheckpointConverter.Resolve(import with { Half = true }, cache);
        Assert.NotEqual(first.Folder, epsilon.Folder);
    }

    [Theory]
    [InlineData(null, null, "x.safetensors", "epsilon", "SD 1.x models are epsilon")]
    [InlineData("yaml", null, "x.safetensors", "v_prediction", "sidecar 'x.yaml'")]
    [InlineData("json", null, "x.safetensors", "v_prediction", "sidecar 'x.json'")]
    [InlineData("yaml", "epsilon", "x.safetensors", "epsilon", "--prediction")]
    [InlineData(null, null, "x-vpred.safetensors", "v_prediction", "the file name says v-prediction")]
    public void PredictionComesFromTheOverrideThenTheSidecarThenTheName(string? sidecar, string? overridden, string name, string expected, string why)
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, name);
        FakeCheckpoints.WriteSingleFile(file, SyntheticPreset.Tiny, ModelFamily.Sd1, "F16", Seed, extras: false);
        if (sidecar == "yaml") dir.File(Path.ChangeExtension(name, ".yaml"), "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: \"v\" # v-prediction\n");
        if (sidecar == "json") dir.File(Path.ChangeExtension(name, ".json"), "{\"prediction_type\": \"v_prediction\"}");
        var converted = CheckpointConverter.Convert(new CheckpointImport
        {
            Source = file,
            Architecture = SyntheticPreset.Tiny,
            Prediction = overridden is null ? null : Sidecar.ParsePrediction(overridden, "--prediction"),
        }, Path.Combine(dir.Path, "out"), new CheckpointCache(Path.Combine(dir.Path, "cache")));

        Assert.Contains(converted.Decisions, d => d.StartsWith($"prediction: {expected} ({why}", StringComparison.Ordinal));
        var scheduler = SchedulerConfig.Load(Path.Combine(converted.Folder, "scheduler", "scheduler_config.json"));
        Assert.Equal(expected == "epsilon" ? PredictionType.Epsilon : PredictionType.VPrediction, SchedulerRegistry.PredictionOf(scheduler));
    }

    [Fact]
    public void AnSd2FileWithoutHintsIsVPredictionAsDiffusersDecides()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "model.safetensors");
        FakeCheckpoints.WriteSingleFile(file, FakeCheckpoints.TinySd2, ModelFamily.Sd2, "F16", Seed, extras: false);
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = file, Architecture = FakeCheckpoints.TinySd2 },
            Path.Combine(dir.Path, "out"), new CheckpointCache(Path.Combine(dir.Path, "cache")));
        Assert.Equal(PredictionType.VPrediction, converted.Prediction);
        Assert.Contains("prediction: v_prediction (the SD 2.x default for .safetensors files, as diffusers)", converted.Decisions);
        Assert.Contains(converted.Decisions, d => d.StartsWith("scheduler: DDIMScheduler", StringComparison.Ordinal));
    }

    [Fact]
    public void AnInpaintingFileIsConvertedWithItsNineChannelsAndLoads()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "model.safetensors");
        var inpainting = SyntheticPreset.Tiny with { UNet = SyntheticPreset.Tiny.UNet with { InChannels = 9 } };
        FakeCheckpoints.WriteSingleFile(file, inpainting, ModelFamily.Sd1, "F16", Seed, extras: false);
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = file, Architecture = SyntheticPreset.Tiny },
            Path.Combine(dir.Path, "inpaint"), new CheckpointCache(Path.Combine(dir.Path, "cache")));
        Assert.True(converted.Kind.Inpainting);
        Assert.Contains("model: SD 1.x (CLIP ViT-L text encoder), inpainting UNet (9 input channels), single file", converted.Decisions);
        Assert.Equal(32 * 9 * 3 * 3, ModelProbe.Initializers(converted.Folder, "unet")["conv_in.weight"].Length);
        Assert.Contains("ORTStableDiffusionInpaintPipeline", File.ReadAllText(Path.Combine(converted.Folder, "model_index.json")));
        using var model = AsyncDiffusion.Models.ModelFolder.Open(converted.Folder);
        Assert.Equal(9, model.UNet.InputChannels);
    }

    [Theory]
    [InlineData("ldm")]
    [InlineData("diffusers")]
    public void AStandAloneVaeReplacesTheEmbeddedOne(string naming)
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "model.safetensors");
        FakeCheckpoints.WriteSingleFile(file, SyntheticPreset.Tiny, ModelFamily.Sd1, "F32", Seed);
        // A VAE from other weights, named as stand-alone VAE files are.
        var other = FakeCheckpoints.SyntheticWeights(SyntheticPreset.Tiny, 8);
        var vae = other["vae_decoder"].Concat(other["vae_encoder"]).ToList();
        string vaeFile = Path.Combine(dir.Path, "vae.safetensors");
        SafeTensorsWriter.Write(vaeFile, vae.Select(w => naming == "ldm"
            ? new FakeTensor(LdmNames.Vae(w.Spec.Name, 4)!, "F32", w.Spec.Shape.Length == 2 ? [.. w.Spec.Shape, 1, 1] : w.Spec.Shape, w.Values)
            : new FakeTensor(w.Spec.Name.Replace(".to_q.", ".query."), "F32", w.Spec.Shape, w.Values))); // diffusers < 0.17 names, too
        var converted = CheckpointConverter.Convert(new CheckpointImport { Source = file, Vae = vaeFile, Architecture = SyntheticPreset.Tiny },
            Path.Combine(dir.Path, "out"), new CheckpointCache(Path.Combine(dir.Path, "cache")));
        Assert.Empty(converted.Warnings); // the embedded VAE is replaced, not reported as unused

        // The reference binds a dictionary of named weights: text encoder and UNet from the checkpoint's seed, the VAE from the other.
        var mine = FakeCheckpoints.SyntheticWeights(SyntheticPreset.Tiny, Seed);
        var named = mine["text_encoder"].Concat(mine["unet"]).Concat(vae).ToDictionary(w => w.Spec.Name, w => w.Values);
        string reference = Path.Combine(dir.Path, "reference");
        ModelWriter.Write(reference, SyntheticPreset.Tiny, new NamedWeights(named), new ModelWriteOptions { Vintage = ContractVintage.Optimum });
        AssertSameModel(reference, converted.Folder);
    }

    [Fact]
    public void NamedWeightsNameWhatIsMissingAndListWhatWasNotAsked()
    {
        var weights = FakeCheckpoints.SyntheticWeights(SyntheticPreset.Tiny, Seed)["unet"].ToDictionary(w => w.Spec.Name, w => w.Values);
        weights["extra.weight"] = [1f];
        var named = new NamedWeights(weights, "the trained weights");
        using var dir = new TempFolder();
        var e = Assert.Throws<ModelFolderException>(() => ModelWriter.Write(Path.Combine(dir.Path, "m"), SyntheticPreset.Tiny, named));
        Assert.Contains("the trained weights have no tensor 'text_model.embeddings.token_embedding.weight' (text_encoder, shape [49408, 32])", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m")));
        Assert.Contains("extra.weight", named.Unused);
    }

    /// <summary>The synthetic model with the same weights: seeded, rounded through the checkpoint's dtype.</summary>
    private static string Reference(TempFolder dir, SyntheticPreset architecture, string dtype)
    {
        string folder = Path.Combine(dir.Path, "reference");
        ModelWriter.Write(folder, architecture, new RoundedWeights(new SeededWeights(Seed), dtype), new ModelWriteOptions { Vintage = ContractVintage.Optimum });
        return folder;
    }

    internal static void AssertSameModel(string expected, string actual)
    {
        foreach (var component in ModelProbe.Components)
        {
            var want = ModelProbe.Initializers(expected, component);
            var got = ModelProbe.Initializers(actual, component);
            Assert.Equal(want.Keys.Order(), got.Keys.Order());
            foreach (var (name, values) in want)
                Assert.True(values.AsSpan().SequenceEqual(got[name]), $"{component} initializer {name} differs");
        }
        var a = ModelProbe.Outputs(expected);
        var b = ModelProbe.Outputs(actual);
        foreach (var (component, values) in a)
            Assert.True(ModelProbe.MaxDifference(values, b[component]) <= 1e-6, $"{component} outputs differ by {ModelProbe.MaxDifference(values, b[component])}");
    }
}
