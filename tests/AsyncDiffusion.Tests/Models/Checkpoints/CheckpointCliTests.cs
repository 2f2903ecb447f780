using System.Text.Json;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Tests.Cli;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>
/// The command line with checkpoints: <c>models convert</c>, <c>--model FILE|DIFFUSERS_DIR</c> through the
/// cache, and bad files refused with exit code 2, one line, nothing written. The cache goes to a
/// scratch folder through ASYNCDIFFUSION_CHECKPOINT_CACHE (tests in this class run one at a time).
/// </summary>
public sealed class CheckpointCliTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly string? _previous = Environment.GetEnvironmentVariable("ASYNCDIFFUSION_CHECKPOINT_CACHE");

    public CheckpointCliTests() => Environment.SetEnvironmentVariable("ASYNCDIFFUSION_CHECKPOINT_CACHE", Path.Combine(_dir.Path, "cache"));

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("ASYNCDIFFUSION_CHECKPOINT_CACHE", _previous);
        _dir.Dispose();
    }

    private string CacheRoot => Path.Combine(_dir.Path, "cache");

    public static TheoryData<string, byte[], string> CorruptFiles() => new()
    {
        { "bad-json", SafeTensorsTests.Header("{\"w\": {\"dtype\": "), "header is not valid JSON" },
        { "past-end", SafeTensorsTests.Header("{\"w\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", dataBytes: 4), "past the end of the data" },
        { "size-mismatch", SafeTensorsTests.Header("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", dataBytes: 8), "needs 12 bytes" },
        { "huge-header", BitConverter.GetBytes(ulong.MaxValue / 2).Concat(new byte[32]).ToArray(), "byte JSON header, more than the 100,000,000" },
    };

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptCheckpointsExitWith2OnOneLineAndWriteNothing(string name, byte[] bytes, string expected)
    {
        string file = Path.Combine(_dir.Path, name + ".safetensors");
        File.WriteAllBytes(file, bytes);
        string images = Path.Combine(_dir.Path, "images"), converted = Path.Combine(_dir.Path, "converted");
        foreach (var args in new[]
        {
            new[] { "generate", "x", "--model", file, "--steps", "1", "--out", images },
            ["models", "convert", file, "--out", converted],
            ["models", "inspect", file],
        })
        {
            var (code, _, error) = CliRun.Run(args);
            Assert.Equal(2, code);
            var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("error: ", line);
            Assert.Contains($"{name}.safetensors' is not a valid .safetensors file", line);
            Assert.Contains(expected, line);
        }
        Assert.False(Directory.Exists(CacheRoot) && Directory.EnumerateFileSystemEntries(CacheRoot).Any(), "the cache must stay empty");
        Assert.False(Directory.Exists(images));
        Assert.False(Directory.Exists(converted));
    }

    [Fact]
    public void ModelsConvertWritesAFolderThatGenerates()
    {
        string source = Path.Combine(_dir.Path, "tiny-diffusers");
        FakeCheckpoints.WriteDiffusersFolder(source, SyntheticPreset.Tiny, "F16", 1);
        string output = Path.Combine(_dir.Path, "tiny-onnx");
        var (code, stdout, error) = CliRun.Run("models", "convert", source, "--out", output);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint: model: SD 1.x (CLIP ViT-L text encoder), diffusers folder", error);
        Assert.Contains("checkpoint: prediction: epsilon (the folder's scheduler_config.json)", error);
        Assert.Contains("checkpoint: weights: F16 ×", error);
        Assert.Contains("Wrote", stdout);

        (code, stdout, error) = CliRun.Run("generate", "a lighthouse", "--model", output, "--steps", "2", "--json", "--out", Path.Combine(_dir.Path, "images"));
        Assert.True(code == 0, error);
        Assert.Equal(1, JsonDocument.Parse(stdout).RootElement.GetProperty("images").GetArrayLength());
    }

    [Fact]
    public void ACheckpointModelIsConvertedOnceThenTakenFromTheCache()
    {
        string source = Path.Combine(_dir.Path, "tiny-diffusers");
        FakeCheckpoints.WriteDiffusersFolder(source, SyntheticPreset.Tiny, "F32", 2);
        string images = Path.Combine(_dir.Path, "images");
        var (code, _, error) = CliRun.Run("generate", "a lighthouse", "--model", source, "--steps", "2", "--json", "--out", images);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint: converted into " + CacheRoot, error);
        (code, _, error) = CliRun.Run("generate", "a lighthouse", "--model", source, "--steps", "2", "--json", "--out", images);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint: using the cached conversion " + CacheRoot, error);
        Assert.Single(Directory.GetDirectories(CacheRoot));

        var (inspectCode, stdout, inspectError) = CliRun.Run("models", "inspect", source, "--json");
        Assert.True(inspectCode == 0, inspectError);
        Assert.Contains("tiny-diffusers (sha256 ", JsonDocument.Parse(stdout).RootElement.GetProperty("checkpoint").GetString());
    }

    public static TheoryData<string, string[], string> RefusedFiles() => new()
    {
        { "sdxl", ["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.token_embedding.weight"], "is an SDXL checkpoint" },
        { "lora", ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"], "is a LoRA, not a model" },
        { "vae", ["encoder.down.0.block.0.conv1.weight", "decoder.conv_in.weight"], "is a VAE, not a whole model" },
        { "other", ["transformer.h.0.attn.c_attn.weight"], "is not a Stable Diffusion checkpoint" },
    };

    [Theory]
    [MemberData(nameof(RefusedFiles))]
    public void OtherModelsAreRefusedSayingWhatTheFileIs(string name, string[] tensors, string expected)
    {
        string file = Path.Combine(_dir.Path, name + ".safetensors");
        SafeTensorsWriter.Write(file, tensors.Select(t => new FakeTensor(t, "F16", [2, 2, 1, 1], new float[4])));
        var (code, _, error) = CliRun.Run("models", "convert", file);
        Assert.Equal(2, code);
        Assert.Contains(expected, Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.False(Directory.Exists(CacheRoot) && Directory.EnumerateFileSystemEntries(CacheRoot).Any());
    }

    [Theory]
    [InlineData("--lora", "style.safetensors", "apply to a .safetensors checkpoint or diffusers folder")]
    [InlineData("--prediction", "v", "apply to a .safetensors checkpoint or diffusers folder")]
    public void CheckpointOptionsNeedACheckpointModel(string option, string value, string expected)
    {
        var (code, _, error) = CliRun.Run("generate", "x", "--model", TinyModels.Folder(), option, value, "--out", Path.Combine(_dir.Path, "images"));
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void PickledCheckpointsAreNotRead()
    {
        string file = _dir.File("model.ckpt", "PK pickle");
        var (code, _, error) = CliRun.Run("generate", "x", "--model", file, "--out", Path.Combine(_dir.Path, "images"));
        Assert.Equal(2, code);
        Assert.Contains("is a file but not a .safetensors checkpoint", error);
    }

    [Fact]
    public void AnUnknownPredictionIsBadInput()
    {
        string source = Path.Combine(_dir.Path, "tiny-diffusers");
        FakeCheckpoints.WriteDiffusersFolder(source, SyntheticPreset.Tiny, "F16", 1);
        var (code, _, error) = CliRun.Run("models", "convert", source, "--prediction", "x0-ish");
        Assert.Equal(2, code);
        Assert.Contains("--prediction 'x0-ish' is not a prediction type; expected epsilon or v", error);
    }
}
