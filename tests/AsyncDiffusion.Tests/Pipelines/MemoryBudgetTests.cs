using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Cli;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Pipelines;

/// <summary><c>--memory-budget</c>: sizes parse with their units, the fastest policy that fits is chosen, and the chosen policy is what runs.</summary>
public class MemoryBudgetTests
{
    [Theory]
    [InlineData("6GB", 6_000_000_000L)]
    [InlineData("5.5GiB", 5_905_580_032L)]
    [InlineData("800 MB", 800_000_000L)]
    [InlineData("4096MiB", 4_294_967_296L)]
    public void SizesParseWithTheirUnits(string text, long bytes) => Assert.Equal(bytes, MemoryBudget.Parse(text));

    [Theory]
    [InlineData("6")]
    [InlineData("lots")]
    [InlineData("-2GB")]
    [InlineData("0GB")]
    [InlineData("6TB")]
    public void ANonSizeIsRefusedNamingTheOptionAndTheExpectedForm(string text)
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => MemoryBudget.Parse(text));
        Assert.Contains("--memory-budget", e.Message);
        Assert.Contains("GB, GiB, MB or MiB", e.Message);
    }

    [Fact]
    public void TheFastestPolicyThatFitsIsChosenAndATooSmallBudgetNamesWhatItNeeds()
    {
        string folder = TinyModels.Folder();
        long weights = MemoryBudget.WeightBytes(folder);
        Assert.True(weights > 0);
        var estimates = MemoryBudget.Candidates.Select(p => MemoryBudget.Estimate(folder, weights, p, 512, 512)).ToArray();
        for (int i = 1; i < estimates.Length; i++) Assert.True(estimates[i] <= estimates[i - 1], $"policy {i} is expected to need no more than policy {i - 1}");
        Assert.True(estimates[^1] < estimates[0]);

        Assert.Equal(MemoryPolicy.Default, MemoryBudget.Plan(folder, 512, 512, estimates[0]).Policy);
        var second = MemoryBudget.Plan(folder, 512, 512, estimates[0] - 1);
        Assert.True(second.Policy.SequentialGuidance);
        Assert.True(second.EstimatedPeakBytes < estimates[0]);
        Assert.Equal(MemoryBudget.Candidates[^1], MemoryBudget.Plan(folder, 512, 512, estimates[^1]).Policy);

        var e = Assert.Throws<AsyncDiffusionException>(() => MemoryBudget.Plan(folder, 512, 512, estimates[^1] - 1));
        Assert.Contains("at least", e.Message);
        Assert.Contains("512×512", e.Message);
    }

    [Fact]
    public void LargerImagesAndMoreImagesAtOnceNeedMore()
    {
        string folder = TinyModels.Folder();
        long weights = MemoryBudget.WeightBytes(folder);
        var policy = MemoryPolicy.Default;
        Assert.True(MemoryBudget.Estimate(folder, weights, policy, 768, 768) > MemoryBudget.Estimate(folder, weights, policy, 512, 512));
        Assert.True(MemoryBudget.Estimate(folder, weights, policy, 512, 512, imagesAtOnce: 4) > MemoryBudget.Estimate(folder, weights, policy, 512, 512));
        // Above the untiled limit decoding works a tile at a time, so the decode term stops growing with the image.
        var wholeAlways = policy with { MaxUntiledLatent = 4096 };
        Assert.True(MemoryBudget.Estimate(folder, weights, policy, 2048, 2048) < MemoryBudget.Estimate(folder, weights, wholeAlways, 2048, 2048));
        Assert.Equal(MemoryBudget.Estimate(folder, weights, policy, 512, 512), MemoryBudget.Estimate(folder, weights, wholeAlways, 512, 512));
    }

    [Fact]
    public async Task AnEngineWithSequentialGuidanceRunsGuidanceAsTwoCallsAndGivesTheSameImage()
    {
        var request = new GenerationRequest { Prompt = "budget", Steps = 3, GuidanceScale = 6, Seed = 7, Scheduler = "Euler" };
        async Task<(byte[] Pixels, bool CfgAsBatch)> Run(MemoryPolicy memory)
        {
            var options = new EngineOptions { Mode = EngineMode.Sync, Memory = memory };
            using var model = ModelFolder.Open(TinyModels.Folder(), DiffusionEngine.SessionSettingsFor(options));
            using var engine = new DiffusionEngine(model, options);
            var job = engine.Submit(request);
            var result = await job.Completion.WaitAsync(TimeSpan.FromSeconds(60));
            return (result.Generation.Images[0].Image.Pixels, job.Plan.Request.CfgAsBatch);
        }
        var (batched, batchedCfg) = await Run(MemoryPolicy.Default);
        var (sequential, sequentialCfg) = await Run(MemoryPolicy.Default with { SequentialGuidance = true });
        Assert.True(batchedCfg);
        Assert.False(sequentialCfg);
        Assert.True(batched.Zip(sequential).Max(p => Math.Abs(p.First - p.Second)) <= 1); // the same arithmetic, rows in other calls
    }

    [Fact]
    public void TheDecodersUseThePolicysTiles()
    {
        var settings = SessionSettings.Default with { Memory = MemoryPolicy.Default with { MaxUntiledLatent = 32, DecodeTileLatent = 32 } };
        using var model = ModelFolder.Open(TinyModels.Folder(), settings);
        using var decoders = new LatentDecoders(model, settings);
        var vae = Assert.IsType<AsyncDiffusion.Models.TiledLatentDecoder>(decoders.For(DecoderKind.Vae));
        Assert.Equal((32, 8, 32), (vae.TileLatent, vae.OverlapLatent, vae.MaxUntiledLatent));
        var taesd = Assert.IsType<AsyncDiffusion.Models.TiledLatentDecoder>(decoders.For(DecoderKind.Taesd));
        Assert.Equal(32, taesd.TileLatent);
    }

    [Fact]
    public void GenerateWithABudgetSaysWhatItPicksAndATooSmallOneExitsWithOneLine()
    {
        using var dir = new TempFolder();
        var (code, _, error) = CliRun.Run("generate", "budget", "--model", TinyModels.Folder(), "--steps", "2", "--seed", "1", "--out", dir.Path, "--json", "--memory-budget", "8GB");
        Assert.True(code == 0, error);
        Assert.Contains("memory budget 7.45 GiB", error);
        Assert.Single(Directory.GetFiles(dir.Path, "*.png"));

        (code, _, error) = CliRun.Run("generate", "budget", "--model", TinyModels.Folder(), "--steps", "2", "--out", dir.Path, "--memory-budget", "1MB");
        Assert.Equal(2, code);
        Assert.Contains("--memory-budget", error);
        Assert.Contains("at least", error);
        Assert.DoesNotContain("   at ", error); // no stack trace

        (code, _, error) = CliRun.Run("generate", "budget", "--model", TinyModels.Folder(), "--steps", "2", "--out", dir.Path, "--memory-budget", "plenty");
        Assert.Equal(2, code);
        Assert.Contains("is not a size", error);
    }

    [Fact]
    public void BenchmarkAndServeRefuseABudgetBeforeLoadingOrListening()
    {
        var (code, _, error) = CliRun.Run("benchmark", "--model", TinyModels.Folder(), "--mode", "sync", "--requests", "1", "--steps", "1", "--no-probe", "--memory-budget", "1MB");
        Assert.Equal(2, code);
        Assert.Contains("--memory-budget", error);
        Assert.Contains("at least", error);

        (code, _, error) = CliRun.Run("serve", "--model", TinyModels.Folder(), "--urls", "http://127.0.0.1:0", "--memory-budget", "a lot");
        Assert.Equal(2, code);
        Assert.Contains("is not a size", error);

        (code, _, error) = CliRun.Run("serve", "--model", TinyModels.Folder(), "--urls", "http://127.0.0.1:0", "--memory-budget", "1MB");
        Assert.Equal(2, code);
        Assert.Contains("at least", error);
        Assert.DoesNotContain("   at ", error);
    }
}
