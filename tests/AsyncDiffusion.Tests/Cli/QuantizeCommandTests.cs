using System.Text.Json;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Quantization;

namespace AsyncDiffusion.Tests.Cli;

public class QuantizeCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void QuantizeWritesAModelThatInspectGenerateAndBenchmarkRead()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "tiny-int8"), report = Path.Combine(dir.Path, "report.json");
        string prompts = dir.File("prompts.txt", "# calibration\na castle on a hill\n\na bowl of fruit, still life\n");
        var (code, stdout, stderr) = Run("models", "quantize", TinyModels.Folder(), "--out", output, "--calibration-prompts", prompts,
            "--calibration-steps", "2", "--size", "64x64", "--exclude", "*attn2*", "--report", report, "--json");
        Assert.True(code == 0, stderr);
        using var summary = JsonDocument.Parse(stdout);
        Assert.Equal(output, summary.RootElement.GetProperty("folder").GetString());
        Assert.Equal(4, summary.RootElement.GetProperty("components").EnumerateObject().Count());
        Assert.Contains("excluded by pattern '*attn2*'", stdout);
        using var written = JsonDocument.Parse(File.ReadAllText(report));
        Assert.Equal(5, written.RootElement.GetProperty("unet_output").GetArrayLength());
        Assert.Equal(3, written.RootElement.GetProperty("taesd").GetArrayLength());
        Assert.Contains("calls: 2 prompts × 2 steps at 64x64", File.ReadAllText(Path.Combine(output, "unet", "quantization.json")));

        (code, stdout, stderr) = Run("models", "inspect", output, "--json");
        Assert.True(code == 0, stderr);
        using var inspect = JsonDocument.Parse(stdout);
        Assert.Equal("int8: unet, text_encoder, vae_decoder, vae_encoder", inspect.RootElement.GetProperty("quantization").GetString());
        Assert.StartsWith("int8: ", inspect.RootElement.GetProperty("unet.quantization").GetString());
        Assert.True(inspect.RootElement.GetProperty("unet.int8_weights").GetInt64() > 0);

        (code, _, stderr) = Run("generate", "a castle", "--model", output, "--steps", "2", "--out", Path.Combine(dir.Path, "images"), "--json");
        Assert.True(code == 0, stderr);
        Assert.Single(Directory.GetFiles(Path.Combine(dir.Path, "images")));
    }

    [Fact]
    public void QuantizeShowsProgressThenTablesWithoutJson()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "text-int8");
        var (code, stdout, stderr) = Run("models", "quantize", TinyModels.Folder(), "--out", output, "--components", "text_encoder", "--calibration-steps", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains("quantized components", stdout);
        Assert.Contains("12 DynamicQuantizeMatMul", stdout);
        Assert.Contains("end to end", stdout);
        Assert.Contains("TAESD decoder (real weights)", stdout);
        Assert.Contains("Wrote ", stdout);
        Assert.True(File.Exists(Path.Combine(output, "text_encoder", "quantization.json")));
    }

    [Fact]
    public void BenchmarkComparesTwoModelsInOneRun()
    {
        var (code, stdout, stderr) = Run("benchmark", "--model", TinyModels.Folder(), "--compare", QuantizedTinyModels.Folder, "--mode", "sync",
            "--requests", "1", "--steps", "2", "--no-probe");
        Assert.True(code == 0, stderr);
        Assert.Contains("comparison", stdout);
        Assert.Contains("ratio", stdout);
        Assert.Contains(Path.GetFileName(QuantizedTinyModels.Folder), stdout);
    }

    public static TheoryData<string, string[], string> BadInputs() => new()
    {
        { "already quantized", ["models", "quantize", "{int8}", "--out", "{out}"], "is already quantized" },
        { "not a model folder", ["models", "quantize", "{empty}", "--out", "{out}"], "model_index.json' not found" },
        { "unwritable output", ["models", "quantize", "{tiny}", "--out", "/proc/asyncdiffusion-int8-test"], "Cannot write the output folder" },
        { "fp16 export", ["models", "quantize", "{fp16}", "--out", "{out}"], "quantize the float32 export" },
        { "output exists", ["models", "quantize", "{tiny}", "--out", "{nonempty}"], "already exists and is not empty" },
        { "empty prompts file", ["models", "quantize", "{tiny}", "--out", "{out}", "--calibration-prompts", "{blank}"], "has no prompts" },
        { "missing prompts file", ["models", "quantize", "{tiny}", "--out", "{out}", "--calibration-prompts", "{missing}"], "not found" },
        { "unknown component", ["models", "quantize", "{tiny}", "--out", "{out}", "--components", "unet,safety_checker"], "Unknown component 'safety_checker'" },
        { "bad size", ["models", "quantize", "{tiny}", "--out", "{out}", "--size", "60x64"], "width is 60" },
        { "bad clipping", ["models", "quantize", "{tiny}", "--out", "{out}", "--clip", "loose"], "--clip 'loose'" },
        { "report folder missing", ["models", "quantize", "{tiny}", "--out", "{out}", "--report", "{missing}/r.json"], "--report" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInputExitsWith2OneLineAndLeavesNoFolder(string what, string[] args, string message)
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "out"), empty = Path.Combine(dir.Path, "empty"), nonEmpty = Path.Combine(dir.Path, "nonempty");
        Directory.CreateDirectory(empty);
        dir.File("empty/notes.txt", "not a model");
        dir.File("nonempty/keep.txt", "mine");
        string blank = dir.File("blank.txt", "\n  \n# only a comment\n");
        var resolved = args.Select(a => a.Replace("{int8}", QuantizedTinyModels.Folder).Replace("{tiny}", TinyModels.Folder()).Replace("{empty}", empty)
            .Replace("{fp16}", TinyModels.Folder(half: true))
            .Replace("{out}", output).Replace("{nonempty}", nonEmpty).Replace("{blank}", blank).Replace("{missing}", Path.Combine(dir.Path, "missing"))).ToArray();
        var (code, _, error) = Run(resolved);
        Assert.True(code == 2, $"{what}: exit {code}, {error}");
        Assert.Contains(message, error);
        Assert.StartsWith("error: ", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.False(Directory.Exists(output), what);
        Assert.Empty(Directory.GetDirectories(dir.Path, "*.partial-*"));
        Assert.Equal(["keep.txt"], Directory.GetFiles(nonEmpty).Select(Path.GetFileName));
        Assert.False(Directory.Exists("/proc/asyncdiffusion-int8-test"));
    }
}
