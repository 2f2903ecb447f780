using System.Diagnostics;
using System.Text.Json.Nodes;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Tests.Cli;

namespace AsyncDiffusion.Tests.Models;

/// <summary>
/// Broken model folders made from the tiny synthetic model: every one is exit code 2 and one
/// line naming the file and what was expected, in <c>models inspect</c>, <c>generate</c> and
/// <c>serve</c>; what the configs already tell is found before any ONNX session is created.
/// </summary>
public sealed class BrokenModelFolderTests
{
    /// <summary>A folder break: what is done to a copy of the tiny model, the file the message names, what it says, and whether configs alone tell.</summary>
    public sealed record Break(string Name, Action<string> Apply, string File, string Says, bool BeforeLoading)
    {
        public override string ToString() => Name;
    }

    private static void EditJson(string path, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString());
    }

    private static Action<string> Json(string relative, Action<JsonObject> edit) => folder => EditJson(Path.Combine(folder, relative), edit);

    private static Action<string> Truncate(string relative) => folder =>
    {
        string path = Path.Combine(folder, relative);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
    };

    private static Action<string> Text(string relative, string text) => folder => File.WriteAllText(Path.Combine(folder, relative), text);

    private static Break Named(string name) => BreakList.First(x => x.Name == name);

    public static TheoryData<Break> Breaks => new(BreakList);

    private static readonly Break[] BreakList =
    [
        new("model_index.json cut short", Text("model_index.json", """{"_class_name": "OnnxStableDiff"""), "model_index.json", "is not valid JSON", true),
        new("model_index.json class name is a number", Text("model_index.json", """{"_class_name": 5}"""), "model_index.json", "_class_name is 5", true),
        new("model_index.json component is not a pair", Text("model_index.json", """{"_class_name": "OnnxStableDiffusionPipeline", "unet": "yes"}"""), "model_index.json", "unet is \"yes\"", true),
        new("model_index.json is a list", Text("model_index.json", "[1, 2]"), "model_index.json", "expected an object", true),
        new("fractional in_channels", Json("unet/config.json", c => c["in_channels"] = 4.5), "unet/config.json", "in_channels is 4.5; expected a positive integer", true),
        new("huge sample_size", Json("unet/config.json", c => c["sample_size"] = 1e10), "unet/config.json", "sample_size is 10000000000", true),
        new("hidden_size as text", Json("text_encoder/config.json", c => c["hidden_size"] = "32"), "text_encoder/config.json", "hidden_size is \"32\"", true),
        new("block_out_channels with a word", Json("vae_decoder/config.json", c => c["block_out_channels"] = new JsonArray(16, "a")), "vae_decoder/config.json", "block_out_channels", true),
        new("too many blocks", Json("unet/config.json", c => c["block_out_channels"] = new JsonArray(Enumerable.Repeat(32, 40).Select(x => (JsonNode)x).ToArray())), "unet/config.json", "1 to 8 positive integers", true),
        new("negative scaling factor", Json("vae_decoder/config.json", c => c["scaling_factor"] = -1), "vae_decoder/config.json", "scaling_factor is -1", true),
        new("config.json not JSON", Text("vae_encoder/config.json", "{oops"), "vae_encoder/config.json", "is not valid JSON", true),
        new("tokenizer larger than the text encoder's vocabulary", Json("text_encoder/config.json", c => c["vocab_size"] = 1000), "vocab.json", "has 49,408 tokens but", true),
        new("scheduler trained on 0 steps", Json("scheduler/scheduler_config.json", c => c["num_train_timesteps"] = 0), "scheduler_config.json", "num_train_timesteps 0", true),
        new("scheduler steps fractional", Json("scheduler/scheduler_config.json", c => c["num_train_timesteps"] = 999.5), "scheduler_config.json", "expected an integer", true),
        new("text width mismatch", Json("unet/config.json", c => c["cross_attention_dim"] = 48), "unet/config.json", "attends to 48-wide text states", true),
        new("latent channel mismatch", Json("vae_decoder/config.json", c => c["latent_channels"] = 8), "vae_decoder/config.json", "latent_channels 8", true),
        new("tokenizer max length as text", Json("tokenizer/tokenizer_config.json", c => c["model_max_length"] = "long"), "tokenizer_config.json", "model_max_length", true),
        new("truncated UNet weights", Truncate("unet/model.onnx_data"), "unet/model.onnx", "could not be loaded by ONNX Runtime", false),
        new("truncated UNet graph", Truncate("unet/model.onnx"), "unet/model.onnx", "could not be loaded by ONNX Runtime", false),
    ];

    internal static string BrokenCopy(Break b)
    {
        string folder = Path.Combine(Directory.CreateTempSubdirectory("asyncdiffusion-broken-").FullName, "tiny");
        CopyFolder(TinyModels.Folder("optimum"), folder);
        b.Apply(folder);
        return folder;
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.GetDirectories(from)) CopyFolder(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    private static void AssertOneLine(int code, string err, Break b)
    {
        string line = CliRun.OneErrorLine(code, err);
        Assert.Contains(b.File.Replace('/', Path.DirectorySeparatorChar), line);
        Assert.Contains(b.Says, line);
    }

    [Theory]
    [MemberData(nameof(Breaks))]
    public void InspectAndGenerateRefuseTheFolderInOneLine(Break b)
    {
        string folder = BrokenCopy(b);
        var (code, _, err) = CliRun.Run("models", "inspect", folder);
        AssertOneLine(code, err, b);
        (code, _, err) = CliRun.Run("generate", "a fox", "--model", folder, "--steps", "1", "--out", Path.Combine(folder, "..", "out"));
        AssertOneLine(code, err, b);
        Assert.False(Directory.Exists(Path.Combine(folder, "..", "out")) && Directory.EnumerateFiles(Path.Combine(folder, "..", "out")).Any());
    }

    [Theory]
    [MemberData(nameof(Breaks))]
    public void WhatTheConfigsTellIsFoundBeforeAnySessionIsCreated(Break b)
    {
        string folder = BrokenCopy(b);
        if (!b.BeforeLoading)
        {
            ModelFolder.Validate(folder); // only loading the weights finds it
            return;
        }
        // With every ONNX file unreadable, a check made after loading would name the ONNX file instead.
        foreach (var onnx in Directory.GetFiles(folder, "model.onnx", SearchOption.AllDirectories)) File.WriteAllText(onnx, "not onnx");
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Validate(folder));
        Assert.Contains(b.Says, e.Message);
        e = Assert.Throws<ModelFolderException>(() => ModelFolder.Open(folder).Dispose());
        Assert.Contains(b.Says, e.Message);
    }

    [Fact]
    public async Task ServeRefusesABrokenFolderInOneLine()
    {
        var b = Named("fractional in_channels");
        string folder = BrokenCopy(b);
        // Listed second: every listed folder is checked at start, not only the one loaded first. A server that wrongly starts runs until stopped.
        var run = Task.Run(() => CliRun.Run("serve", "--model", TinyModels.Folder("optimum"), "--model", folder, "--urls", "http://127.0.0.1:0"));
        Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60))) == run, "serve started with a broken folder listed");
        var (code, _, err) = await run;
        AssertOneLine(code, err, b);
    }

    [Fact]
    public void AVocabularyMismatchWithoutAConfigIsFoundByOneEncode()
    {
        string folder = Path.Combine(Directory.CreateTempSubdirectory("asyncdiffusion-vocab-").FullName, "small-vocab");
        var preset = SyntheticPreset.Tiny with { TextEncoder = SyntheticPreset.Tiny.TextEncoder with { VocabSize = 1000 } };
        SyntheticModelWriter.Write(folder, preset);
        var e = Assert.Throws<ModelFolderException>(() => ModelFolder.Validate(folder));
        Assert.Contains("vocab_size 1,000", e.Message);
        EditJson(Path.Combine(folder, "text_encoder", "config.json"), c => c.Remove("vocab_size"));
        var (code, _, err) = CliRun.Run("models", "inspect", folder);
        Assert.Equal(2, code);
        Assert.Contains("cannot embed token id 49407", err);
    }

    [Fact]
    public void OnnxRuntimePrintsNothingOfItsOwnForTruncatedWeights()
    {
        var b = Named("truncated UNet weights");
        string folder = BrokenCopy(b);
        string cli = typeof(AsyncDiffusion.Cli.CliApp).Assembly.Location;
        string dotnet = Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        using var process = Process.Start(new ProcessStartInfo(dotnet, [cli, "models", "inspect", folder]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.Equal(2, process.ExitCode);
        Assert.Equal("", stdout.Trim());
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"stderr:\n{stderr}");
        Assert.Contains("unet", lines[0]);
    }
}
