using System.Text.Json;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Cli;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Benchmarking;

public class BenchmarkTests
{
    private static BenchmarkSettings Settings(int requests = 4, int concurrency = 2) => new()
    {
        ModelFolder = TinyModels.Folder("optimum"),
        Engine = new EngineOptions { Streams = 1, MaxBatch = 2 },
        Request = new GenerationRequest { Prompt = "a cat", Steps = 2, Seed = 1 },
        Requests = requests,
        Concurrency = concurrency,
        Probe = false,
    };

    [Fact]
    public void ReportHasLatencyThroughputStagesAndRates()
    {
        var report = BenchmarkRunner.Run(Settings());
        Assert.Equal(4, report.Latency.Count);
        Assert.True(report.Latency.P50 <= report.Latency.P90 && report.Latency.P90 <= report.Latency.P99 && report.Latency.P99 <= report.Latency.Max);
        Assert.Equal(4, report.Images);
        Assert.True(report.ImagesPerMinute > 0);
        Assert.True(report.ColdLatencyMs > 0 && report.LoadSeconds > 0);
        Assert.True(report.Stages.UNetStepMs > 0 && report.Stages.DecodeMs > 0);
        Assert.Equal(["unet (per row)", "text encoder (per prompt)", "vae decoder"], report.Rates.Select(r => r.Component));
        Assert.All(report.Rates, r => Assert.True(r.GFlopPerCall > 0));
        Assert.True(report.Rates[0].Calls >= 2 * 2 * 4, "every step of every image brings two rows with guidance");
        Assert.True(report.PeakRssBytes > 0 && report.PeakManagedBytes > 0);
        Assert.InRange(report.CpuUtilisation, 0, 1.5);
        Assert.False(string.IsNullOrEmpty(report.Machine.OnnxRuntime));
        var json = JsonSerializer.Serialize(report);
        Assert.Contains("\"ImagesPerMinute\"", json);
    }

    [Fact]
    public void ProbeMeasuresBothOperators()
    {
        var probe = MachineProbe.Run(1, repeats: 1);
        Assert.True(probe.MatMulGflops > 1 && probe.Conv3x3Gflops > 1);
        Assert.Equal(Math.Max(probe.MatMulGflops, probe.Conv3x3Gflops), probe.PeakGflops);
    }

    [Fact]
    public void TunerStartsAtTheLatencyConfigurationAndSaysWhyItStopped()
    {
        var result = Tuner.Run(Settings(), latencyCapMs: 60_000, maxStreams: 2, maxBatch: 2);
        Assert.Equal((1, 1), (result.Path[0].Streams, result.Path[0].MaxBatch));
        Assert.NotNull(result.Chosen);
        Assert.False(string.IsNullOrEmpty(result.StopReason));
        Assert.Single(result.Path, s => s.Verdict == "chosen");
        // The chosen streams × batch is also measured with heavy calls overlapping, once.
        var overlapping = Assert.Single(result.Path, s => !s.ExclusiveCompute);
        Assert.Contains(result.Path, s => s.ExclusiveCompute && (s.Streams, s.MaxBatch) == (overlapping.Streams, overlapping.MaxBatch));
        Assert.Contains("overlapping", result.StopReason);

        var impossible = Tuner.Run(Settings(), latencyCapMs: 0.001, maxStreams: 2, maxBatch: 2);
        Assert.Null(impossible.Chosen);
        Assert.Contains("over the", impossible.StopReason);
    }

    [Fact]
    public void BenchmarkCommandWritesJsonAndMarkdown()
    {
        using var dir = new TempFolder();
        string json = Path.Combine(dir.Path, "r.json"), md = Path.Combine(dir.Path, "r.md");
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(["benchmark", "--model", TinyModels.Folder(), "--requests", "2", "--steps", "2", "--no-probe", "--json", json, "--markdown", md], output, error);
        Assert.True(code == 0, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(2, doc.RootElement.GetProperty("Latency").GetProperty("Count").GetInt32());
        Assert.Contains("| config | size |", File.ReadAllText(md));
    }

    [Fact]
    public void SweepWritesATableAndAChart()
    {
        using var dir = new TempFolder();
        string chart = Path.Combine(dir.Path, "sweep.png"), md = Path.Combine(dir.Path, "sweep.md");
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(["benchmark", "--model", TinyModels.Folder("optimum"), "--requests", "2", "--steps", "2", "--no-probe", "--sweep",
            "--streams", "1", "--max-batch", "1,2", "--concurrency", "2", "--chart", chart, "--markdown", md], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.Equal(137, File.ReadAllBytes(chart)[0]);
        var rows = File.ReadAllLines(md).Where(l => l.StartsWith("| sync", StringComparison.Ordinal) || l.StartsWith("| async", StringComparison.Ordinal)).ToArray();
        Assert.Equal(3, rows.Length); // the sync baseline and two configurations
    }

    [Fact]
    public void TunedConfigurationRoundTripsAndRejectsNonsense()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "tuned.json");
        var tuned = new TunedConfig(2, 4, 8, 5000, 12.5, 4200, "m", "256x256", 20, "cpu", DateTime.UtcNow);
        tuned.Save(path);
        Assert.Equal(tuned with { MeasuredAt = default }, TunedConfig.Load(path) with { MeasuredAt = default });
        Assert.Equal(4, tuned.ToOptions().MaxBatch);
        File.WriteAllText(path, "{\"streams\": 0, \"max_batch\": 1}");
        Assert.Contains("must be at least 1", Assert.Throws<AsyncDiffusionException>(() => TunedConfig.Load(path)).Message);
        File.WriteAllText(path, "not json");
        Assert.Contains("is not a tuned configuration", Assert.Throws<AsyncDiffusionException>(() => TunedConfig.Load(path)).Message);
    }

    [Theory]
    [InlineData("--streams", "0")]
    [InlineData("--max-batch", "x")]
    [InlineData("--mode", "turbo")]
    public void BadBenchmarkOptionsExitWith2(string option, string value)
    {
        var error = new StringWriter();
        int code = CliApp.Run(["benchmark", "--model", TinyModels.Folder(), option, value, "--no-probe"], new StringWriter(), error);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error.ToString());
    }
}
