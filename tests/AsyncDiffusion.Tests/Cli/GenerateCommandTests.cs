using System.Text.Json;
using AsyncDiffusion.Cli;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Cli;

public class GenerateCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void GenerateWritesPngsWithInfotextAndAJsonSummary()
    {
        using var dir = new TempFolder();
        var (code, output, error) = Run("generate", "a photo of an astronaut riding a horse on mars", "--model", TinyModels.Folder(), "--steps", "3",
            "--seed", "42", "--n", "2", "--out", dir.Path, "--json", "--scheduler", "Euler a");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var images = doc.RootElement.GetProperty("images");
        Assert.Equal(2, images.GetArrayLength());
        string file = images[1].GetProperty("file").GetString()!;
        Assert.Equal(43, images[1].GetProperty("seed").GetInt64());
        var text = PngText.Read(File.ReadAllBytes(file))["parameters"];
        Assert.StartsWith("a photo of an astronaut riding a horse on mars\nSteps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 43, Size: 64x64", text);
        Assert.Equal(2 * 3, doc.RootElement.GetProperty("timings_ms").GetProperty("unet_steps").GetArrayLength()); // every step of every image

        // Running again never overwrites.
        Run("generate", "a photo of an astronaut riding a horse on mars", "--model", TinyModels.Folder(), "--steps", "3", "--seed", "42", "--out", dir.Path, "--json");
        Assert.True(3 == Directory.GetFiles(dir.Path).Length, string.Join("\n", Directory.GetFiles(dir.Path)));
    }

    [Theory]
    [InlineData(null, "2.5")]
    [InlineData("4", "4")]
    public void WithoutCfgTheModelFoldersGuidanceIsUsedAndAGivenCfgWins(string? cfg, string expected)
    {
        using var dir = new TempFolder();
        string[] args = ["generate", "a red circle on a blue background", "--model", TinyShapesModelTests.Folder, "--steps", "2", "--seed", "1", "--out", dir.Path, "--json"];
        var (code, output, error) = Run(cfg is null ? args : [.. args, "--cfg", cfg]);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        string file = doc.RootElement.GetProperty("images")[0].GetProperty("file").GetString()!;
        Assert.Contains($"CFG scale: {expected}, ", PngText.Read(File.ReadAllBytes(file))["parameters"]);
    }

    [Fact]
    public void ProfileWritesEachComponentsOperatorTraceAndASummaryWithConvRatesAndAMemoryTimeline()
    {
        using var dir = new TempFolder();
        string profile = Path.Combine(dir.Path, "profile");
        var (code, _, error) = Run("generate", "profiled", "--model", TinyModels.Folder(), "--steps", "2", "--seed", "1", "--scheduler", "Euler", "--out", dir.Path, "--json",
            "--profile", profile);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(Path.Combine(profile, "unet-profile.json")));
        Assert.True(File.Exists(Path.Combine(profile, "text_encoder-profile.json")));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(profile, "profile-summary.json")));
        var conv = doc.RootElement.GetProperty("operators").EnumerateArray()
            .Single(o => o.GetProperty("component").GetString() == "unet" && o.GetProperty("op_type").GetString() == "Conv");
        Assert.True(conv.GetProperty("g_flop").GetDouble() > 0);
        var roofline = doc.RootElement.GetProperty("roofline").EnumerateArray().Single(r => r.GetProperty("component").GetString() == "unet");
        Assert.True(roofline.GetProperty("percent").GetDouble() > 0);
        Assert.True(doc.RootElement.GetProperty("probe").GetProperty("peak_gflops").GetDouble() > 0);
        Assert.True(doc.RootElement.GetProperty("probe").GetProperty("ceiling").GetProperty("gflops").GetDouble() > 0);
        Assert.True(roofline.GetProperty("wait_milliseconds").GetDouble() >= 0);
        var stages = doc.RootElement.GetProperty("memory_timeline").EnumerateArray().Select(m => m.GetProperty("stage").GetString()).ToList();
        Assert.Equal(["start", "model loaded", "prompt encoded", "image 1 step 1/2", "image 1 step 2/2", "image 1 decoded"], stages);
    }

    [Theory]
    [InlineData("--size", "65x64", "width is 65")]
    [InlineData("--steps", "0", "steps is 0")]
    [InlineData("--scheduler", "Warp", "Unknown scheduler 'Warp'")]
    [InlineData("--decoder", "magic", "--decoder 'magic'")]
    [InlineData("--rng", "dice", "Unknown noise generator 'dice'")]
    [InlineData("--format", "gif", "Unknown image format 'gif'")]
    [InlineData("--optimize", "turbo", "Graph optimisation 'turbo' is not known")]
    [InlineData("--clip-skip", "3", "clip skip is 3; this model's text encoder has 2 layers, so expected 1 to 2")]
    public void BadOptionsExitWith2AndWriteNothing(string option, string value, string message)
    {
        using var dir = new TempFolder();
        string outDir = Path.Combine(dir.Path, "out");
        var (code, _, error) = Run("generate", "x", "--model", TinyModels.Folder(), option, value, "--out", outDir);
        Assert.Equal(2, code);
        Assert.Contains(message, error);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void ClipSkipAndTilingReachTheImageAndItsInfotext()
    {
        using var dir = new TempFolder();
        var (code, output, error) = Run("generate", "a tiled floor", "--model", TinyModels.Folder(), "--steps", "2", "--seed", "8", "--clip-skip", "2", "--tiling",
            "--out", dir.Path, "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        string file = doc.RootElement.GetProperty("images")[0].GetProperty("file").GetString()!;
        var text = PngText.Read(File.ReadAllBytes(file))["parameters"];
        Assert.Contains(", Clip skip: 2, RNG: CPU, Tiling: True", text);
    }

    [Fact]
    public void UnreadableInitImageExitsWith2()
    {
        using var dir = new TempFolder();
        string bad = dir.File("init.png", "not a png");
        var (code, _, error) = Run("generate", "x", "--model", TinyModels.Folder(), "--init-image", bad, "--out", Path.Combine(dir.Path, "out"));
        Assert.Equal(2, code);
        Assert.Contains("is not a readable image", error);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "out")));
    }

    [Fact]
    public void ImageToImageFromTheCommandLine()
    {
        using var dir = new TempFolder();
        string init = Path.Combine(dir.Path, "init.png");
        File.WriteAllBytes(init, ImageCodec.Encode(AsyncDiffusion.Tests.Pipelines.PipelineMathTests.InitImage(), ImageFormat.Png));
        var (code, output, error) = Run("generate", "a fox", "--model", TinyModels.Folder(), "--init-image", init, "--strength", "0.5", "--steps", "4",
            "--out", Path.Combine(dir.Path, "out"), "--json", "--decoder", "taesd");
        Assert.True(code == 0, error);
        Assert.Contains("Denoising strength: 0.5", output);
    }

    [Fact]
    public void HiresFixAndVariationSeedsFromTheCommandLine()
    {
        using var dir = new TempFolder();
        var (code, output, error) = Run("generate", "a fox", "--model", TinyModels.Folder(), "--steps", "3", "--scheduler", "Euler", "--seed", "4",
            "--subseed", "9", "--subseed-strength", "0.5", "--hires-scale", "1.5", "--hires-steps", "2", "--hires-strength", "0.6", "--hires-upscaler", "Nearest",
            "--out", dir.Path, "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(96, doc.RootElement.GetProperty("width").GetInt32());
        string file = doc.RootElement.GetProperty("images")[0].GetProperty("file").GetString()!;
        var image = ImageCodec.Decode(file);
        Assert.Equal((96, 96), (image.Width, image.Height));
        string text = PngText.Read(File.ReadAllBytes(file))["parameters"];
        Assert.Contains("Seed: 4, Size: 64x64, Model: ", text);
        Assert.Contains("Variation seed: 9, Variation seed strength: 0.5, Denoising strength: 0.6, ", text);
        Assert.Contains("Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Nearest, Version", text);
        Assert.Equal(3 + 2, doc.RootElement.GetProperty("timings_ms").GetProperty("unet_steps").GetArrayLength());
        Assert.True(doc.RootElement.GetProperty("timings_ms").GetProperty("hires_upscale").GetDouble() > 0);
    }

    [Theory]
    [InlineData("--hires-upscaler", "4x-UltraSharp", "hires upscaler '4x-UltraSharp' is not available")]
    [InlineData("--hires-resize", "wide", "--hires-resize 'wide' is not WIDTHxHEIGHT")]
    [InlineData("--seed-resize-from", "12", "--seed-resize-from '12' is not WIDTHxHEIGHT")]
    [InlineData("--subseed-strength", "3", "subseed strength (variation strength) is 3")]
    public void BadHiresAndVariationOptionsExitWith2(string option, string value, string message)
    {
        using var dir = new TempFolder();
        string outDir = Path.Combine(dir.Path, "out");
        var (code, _, error) = Run("generate", "x", "--model", TinyModels.Folder(), option, value, "--out", outDir);
        Assert.Equal(2, code);
        Assert.StartsWith("error:", error.Trim());
        Assert.Contains(message, error);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void BuiltInModelLivesInTheXdgCache()
    {
        string? old = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        try
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "/tmp/some-cache");
            Assert.Matches("^/tmp/some-cache/asyncdiffusion/models/tiny-shapes-[0-9a-f]{12}$", BuiltInModel.Folder);
        }
        finally
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", old);
        }
    }
}
