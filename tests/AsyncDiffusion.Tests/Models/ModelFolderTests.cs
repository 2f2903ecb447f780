using System.Security.Cryptography;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Tests.Models;

public class ModelFolderTests
{
    [Theory]
    [InlineData("legacy", TensorElementType.Int32, TimestepKind.Int64PerItem, VaeEncoderOutput.LatentSample, "weights.pb")]
    [InlineData("optimum", TensorElementType.Int32, TimestepKind.FloatPerItem, VaeEncoderOutput.LatentParameters, "model.onnx_data")]
    [InlineData("optimum-1.24", TensorElementType.Int64, TimestepKind.FloatScalar, VaeEncoderOutput.LatentParameters, "model.onnx_data")]
    public void EveryVintageLoadsWithItsContractAndRuns(string vintage, TensorElementType ids, TimestepKind timestep, VaeEncoderOutput encoderOutput, string externalData)
    {
        string folder = TinyModels.Folder(vintage);
        Assert.True(File.Exists(Path.Combine(folder, "unet", externalData)));
        using var model = ModelFolder.Open(folder);
        Assert.Equal(ids, model.TextEncoder.InputIdsType);
        Assert.Equal(timestep, model.UNet.Timestep);
        Assert.Equal(encoderOutput, model.VaeEncoder!.Output);
        Assert.Equal(32, model.TextEncoder.HiddenSize);
        Assert.Equal(4, model.LatentChannels);
        Assert.Equal(8, model.VaeScaleFactor);
        Assert.Equal(0.18215, model.ScalingFactor);
        Assert.Equal("tiny", model.SyntheticPreset);
        Assert.Null(model.RecommendedGuidanceScale); // only a folder that names one has one
        Assert.Equal(PredictionType.Epsilon, model.Prediction);
        RunAllComponents(model);
    }

    [Fact]
    public void HalfPrecisionModelLoadsAndRuns()
    {
        using var model = ModelFolder.Open(TinyModels.Folder(half: true));
        Assert.Equal(TensorElementType.Float16, model.UNet.SampleType);
        Assert.Equal(TensorElementType.Float16, model.VaeDecoder.InputType);
        RunAllComponents(model);
    }

    [Fact]
    public void SameSeedWritesByteIdenticalFilesAndAnotherSeedDoesNot()
    {
        using var dir = new TempFolder();
        SyntheticModelWriter.Write(Path.Combine(dir.Path, "a"), SyntheticPreset.Tiny, seed: 7);
        SyntheticModelWriter.Write(Path.Combine(dir.Path, "b"), SyntheticPreset.Tiny, seed: 7);
        SyntheticModelWriter.Write(Path.Combine(dir.Path, "c"), SyntheticPreset.Tiny, seed: 8);
        var a = Hashes(Path.Combine(dir.Path, "a"));
        Assert.Equal(a, Hashes(Path.Combine(dir.Path, "b")));
        var c = Hashes(Path.Combine(dir.Path, "c"));
        Assert.NotEqual(a["unet/model.onnx_data"], c["unet/model.onnx_data"]);
        Assert.Equal(a["tokenizer/vocab.json"], c["tokenizer/vocab.json"]);
    }

    [Theory]
    [InlineData("Euler a")]
    [InlineData("DDIM")]
    [InlineData("DPM++ 2M Karras")]
    public void FiftyDenoisingStepsStayFiniteAndNonDegenerate(string schedulerName)
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        var scheduler = SchedulerRegistry.Create(schedulerName, model.SchedulerConfig);
        scheduler.SetTimesteps(50);
        var tokens = model.Tokenizer.Encode("a photo of a cat").InputIds.Concat(model.Tokenizer.Encode("").InputIds).ToArray();
        var context = model.TextEncoder.Encode(tokens, 2);
        var rng = new TorchCpuGenerator(42);
        var latents = new float[4 * 8 * 8];
        rng.NextGaussian(latents);
        for (int i = 0; i < latents.Length; i++) latents[i] *= (float)scheduler.InitNoiseSigma;
        var input = new float[latents.Length * 2];
        foreach (var t in scheduler.Timesteps)
        {
            scheduler.ScaleModelInput(latents, t, input.AsSpan(0, latents.Length));
            input.AsSpan(0, latents.Length).CopyTo(input.AsSpan(latents.Length));
            var noise = model.UNet.Predict(input, [2, 4, 8, 8], [t, t], context, [2, 77, 32]);
            var guided = new float[latents.Length];
            for (int k = 0; k < guided.Length; k++) guided[k] = noise[latents.Length + k] + 7.5f * (noise[k] - noise[latents.Length + k]);
            scheduler.Step(guided, t, latents, rng.NextGaussian);
        }
        Assert.All(latents, v => Assert.True(float.IsFinite(v)));
        double mean = latents.Average(v => (double)v);
        double std = Math.Sqrt(latents.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(std, 0.05, 50);
        var (image, _) = model.VaeDecoder.Decode(latents.Select(v => (float)(v / model.ScalingFactor)).ToArray(), [1, 4, 8, 8]);
        Assert.All(image, v => Assert.True(float.IsFinite(v)));
        Assert.True(image.Max() - image.Min() > 0.01);
    }

    [Fact]
    public void RealTorchExportsOfTextEncoderAndVaeLoadAndRun()
    {
        // pyke's tiny torch.onnx export: int32 ids, hidden 32, VAE factor 2, sampling encoder, no configs.
        string root = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial");
        var tokenizer = AsyncDiffusion.Tokenization.ClipTokenizer.Load(Path.Combine(root, "tokenizer"));
        using var text = TextEncoder.Load(Path.Combine(root, "text_encoder"), SessionSettings.Default);
        Assert.Equal(TensorElementType.Int32, text.InputIdsType);
        Assert.Equal(32, text.HiddenSize);
        Assert.True(text.HasPooler);
        var states = text.Encode(tokenizer.Encode("a red apple").InputIds, 1);
        Assert.Equal(77 * 32, states.Length);
        Assert.All(states, v => Assert.True(float.IsFinite(v)));

        using var decoder = VaeDecoder.Load(Path.Combine(root, "vae_decoder"), SessionSettings.Default);
        Assert.Equal(2, decoder.ScaleFactor);
        Assert.Equal(4, decoder.LatentChannels);
        var (image, shape) = decoder.Decode(new float[4 * 16 * 16], [1, 4, 16, 16]);
        Assert.Equal(new long[] { 1, 3, 32, 32 }, shape);

        using var encoder = VaeEncoder.Load(Path.Combine(root, "vae_encoder"), SessionSettings.Default, scalingFactor: 0.18215);
        Assert.Equal(VaeEncoderOutput.LatentSample, encoder.Output);
        var (latent, latentShape) = encoder.Encode(image, shape);
        Assert.Equal(new long[] { 1, 4, 16, 16 }, latentShape);
        Assert.All(latent, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void MissingFolderAndMissingComponentsAreClearErrors()
    {
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open("/no/such/model"));
        Assert.Contains("does not exist", e.Message);

        using var dir = new TempFolder();
        CopyFolder(TinyModels.Folder(), dir.Path);
        Directory.Delete(Path.Combine(dir.Path, "unet"), recursive: true);
        e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(dir.Path));
        Assert.Contains("no unet/ folder", e.Message);
    }

    [Fact]
    public void TruncatedOnnxFileNamesTheFile()
    {
        using var dir = new TempFolder();
        CopyFolder(TinyModels.Folder(), dir.Path);
        string vae = Path.Combine(dir.Path, "vae_decoder", "model.onnx");
        var bytes = File.ReadAllBytes(vae);
        File.WriteAllBytes(vae, bytes[..(bytes.Length / 3)]);
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(dir.Path));
        Assert.Contains(vae, e.Message);
        Assert.Contains("could not be loaded", e.Message);
    }

    [Fact]
    public void TextEncoderFromAnotherModelIsRejected()
    {
        using var dir = new TempFolder();
        CopyFolder(TinyModels.Folder(), Path.Combine(dir.Path, "model"));
        var wide = SyntheticPreset.Tiny with { TextEncoder = SyntheticPreset.Tiny.TextEncoder with { Hidden = 48 } };
        SyntheticModelWriter.Write(Path.Combine(dir.Path, "other"), wide);
        Directory.Delete(Path.Combine(dir.Path, "model", "text_encoder"), recursive: true);
        CopyFolder(Path.Combine(dir.Path, "other", "text_encoder"), Path.Combine(dir.Path, "model", "text_encoder"));
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(Path.Combine(dir.Path, "model")));
        Assert.Contains("32-wide", e.Message);
        Assert.Contains("48", e.Message);
    }

    [Fact]
    public void SdxlLayoutIsRejectedWithWhatIsSupported()
    {
        using var dir = new TempFolder();
        CopyFolder(TinyModels.Folder(), dir.Path);
        Directory.CreateDirectory(Path.Combine(dir.Path, "text_encoder_2"));
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(dir.Path));
        Assert.Contains("SDXL", e.Message);
        Assert.Contains("SD 1.x and 2.x", e.Message);
    }

    [Fact]
    public void WritingIntoAnExistingFolderIsRefusedAndLeavesItAlone()
    {
        using var dir = new TempFolder();
        string marker = dir.File("keep.txt", "mine");
        var e = Assert.Throws<AsyncDiffusionException>(() => SyntheticModelWriter.Write(dir.Path, SyntheticPreset.Tiny));
        Assert.Contains("not empty", e.Message);
        Assert.Equal("mine", File.ReadAllText(marker));
        Assert.Single(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void InpaintingUNetFoldersOpenWithTheirContract()
    {
        using var model = ModelFolder.Open(TinyModels.Folder("optimum", preset: "tiny-inpaint"));
        Assert.True(model.UNet.IsInpainting);
        Assert.Equal(9, model.UNet.InputChannels);
        Assert.Equal(4, model.LatentChannels);
        Assert.Equal("ORTStableDiffusionInpaintPipeline", model.PipelineClass);
        var sample = new float[9 * 64];
        var output = model.UNet.Predict(sample, [1, 9, 8, 8], [500], new float[77 * 32], [1, 77, 32]);
        Assert.Equal(4 * 64, output.Length);
    }

    [Fact]
    public void InpaintingUNetWithoutVaeEncoderAndOtherChannelCountsAreRefused()
    {
        using var dir = new TempFolder();
        string folder = Path.Combine(dir.Path, "no-encoder");
        CopyFolder(TinyModels.Folder("optimum", preset: "tiny-inpaint"), folder);
        Directory.Delete(Path.Combine(folder, "vae_encoder"), recursive: true);
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(folder));
        Assert.Contains("inpainting UNet", e.Message);
        Assert.Contains("vae_encoder", e.Message);

        string pix2pix = Path.Combine(dir.Path, "pix2pix");
        SyntheticModelWriter.Write(pix2pix, SyntheticPreset.Tiny with { UNet = SyntheticPreset.Tiny.UNet with { InChannels = 8 } }, ContractVintage.Optimum);
        e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(pix2pix));
        Assert.Contains("8 input channels", e.Message);
        Assert.Contains("InstructPix2Pix", e.Message);
    }

    [Fact]
    public void Sd15InpaintIsSd15WithANineChannelConvIn()
    {
        static long Parameters(global::Onnx.GraphProto g) => g.Initializer.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
        var inpaint = SyntheticModelWriter.UNetShapes(SyntheticPreset.Sd15Inpaint);
        Assert.Equal(9, inpaint.Input[0].Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Equal(4, inpaint.Output[0].Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Equal(5 * 320 * 3 * 3, Parameters(inpaint) - Parameters(SyntheticModelWriter.UNetShapes(SyntheticPreset.Sd15)));
    }

    private static void RunAllComponents(ModelFolder model)
    {
        var ids = model.Tokenizer.Encode("a photo of an astronaut").InputIds;
        var context = model.TextEncoder.Encode(ids.Concat(ids).ToArray(), 2);
        Assert.Equal(2 * 77 * 32, context.Length);
        var sample = Enumerable.Range(0, 2 * 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray();
        var output = model.UNet.Predict(sample, [2, 4, 8, 8], [500, 500], context, [2, 77, 32]);
        Assert.Equal(sample.Length, output.Length);
        Assert.All(output, v => Assert.True(float.IsFinite(v)));
        var (image, shape) = model.VaeDecoder.Decode(sample.AsSpan(0, 256), [1, 4, 8, 8]);
        Assert.Equal(new long[] { 1, 3, 64, 64 }, shape);
        var (latent, latentShape) = model.VaeEncoder!.Encode(image, shape);
        Assert.Equal(model.VaeEncoder.Output == VaeEncoderOutput.LatentParameters ? 8 : 4, latentShape[1]);
        Assert.All(latent, v => Assert.True(float.IsFinite(v)));
    }

    private static Dictionary<string, string> Hashes(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    internal static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
