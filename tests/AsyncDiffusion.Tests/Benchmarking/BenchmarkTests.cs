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
    public void ProbeMeasuresEachOperatorKind()
    {
        var probe = MachineProbe.Run(1, repeats: 1);
        Assert.True(probe.MatMulGflops > 1 && probe.Conv3x3Gflops > 1 && probe.AttentionGflops > 1);
        Assert.Equal(Math.Max(probe.MatMulGflops, probe.Conv3x3Gflops), probe.PeakGflops);
    }

    // The yardstick times operators as the network runs them: in chains, so layout changes and thread start-up are
    // paid once per chain, not once per timed operator (a lone operator read up to 38 % slow).
    [Fact]
    public void ProbeTimesChainsOfConvolutionsAndFeedForwardProducts()
    {
        var conv = global::Onnx.ModelProto.Parser.ParseFrom(MachineProbe.BuildConv()).Graph;
        var matmul = global::Onnx.ModelProto.Parser.ParseFrom(MachineProbe.BuildMatMul()).Graph;
        Assert.Equal(MachineProbe.Chain, conv.Node.Count(n => n.OpType == "Conv"));
        Assert.Equal(MachineProbe.Chain, matmul.Node.Count(n => n.OpType == "MatMul"));
        Assert.True(MachineProbe.Chain >= 2);
        // Each product consumes the previous one's output: a chain, not side-by-side copies.
        var products = matmul.Node.Where(n => n.OpType == "MatMul").ToList();
        for (int i = 1; i < products.Count; i++) Assert.Equal(products[i - 1].Output[0], products[i].Input[0]);
    }

    // The ceiling's loop must do every multiply-add it counts, on every accumulator: the same recurrence in scalar FMAs,
    // from each accumulator's own start, gives each lane's value (a skipped or merged accumulator would sum differently).
    [Fact]
    public void TheFmaCeilingsLoopDoesEveryMultiplyAddItCounts()
    {
        static float Scalar(long n, float a)
        {
            for (long i = 0; i < n; i++) a = MathF.FusedMultiplyAdd(a, FmaCeiling.Factor, FmaCeiling.Addend);
            return a;
        }
        int lanes = FmaCeiling.VectorBitsHere / 32;
        foreach (long n in new long[] { 0, 1_000, 200_000 })
        {
            float expected = lanes * Enumerable.Range(0, FmaCeiling.Accumulators).Sum(j => Scalar(n, FmaCeiling.Start(j)));
            Assert.Equal(expected, FmaCeiling.Kernel(n), expected * 1e-5f);
        }
        Assert.True(Scalar(200_000, 1f) < Scalar(1_000, 1f) - 1e-3f); // the iterations move the values: a skipped loop would show
    }

    [Fact]
    public void TheFmaCeilingTimesOneThreadAndAllTogether()
    {
        var ceiling = FmaCeiling.Measure(2, rounds: 2);
        Assert.Equal(2, ceiling.Threads);
        Assert.True(ceiling.OneThreadGflops > 0 && ceiling.Gflops > 0 && ceiling.LowestGflops > 0);
        Assert.Equal(ceiling.Gflops / ceiling.OneThreadGflops, ceiling.Scaling, 9);
        var single = FmaCeiling.Measure(1, rounds: 1);
        Assert.Equal(single.OneThreadGflops, single.Gflops); // one thread is not timed twice
        Assert.Throws<ArgumentOutOfRangeException>(() => FmaCeiling.Measure(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => FmaCeiling.Measure(2, rounds: 0));
    }

    [Fact]
    public void TheProbeSaysWhetherTheMachineOrTheKernelsHoldTheRatesBack()
    {
        var probe = new ProbeResult(2, MatMulGflops: 150, Conv3x3Gflops: 200) { AttentionGflops = 100 };
        Assert.Empty(probe.Findings());

        // Steady, a core per thread: only the ceiling and each operator's share of it.
        var steady = probe with { Ceiling = new FmaCeiling(2, 512, 130, 250) { LowestGflops = 240, HighestGflops = 260 } };
        var lines = steady.Findings();
        Assert.Equal(2, lines.Count);
        Assert.Contains("130 GFLOP/s on 1 thread, 250 on 2", lines[0]);
        Assert.Contains("80 % of the ceiling with Conv, 60 % with MatMul, 40 % with attention", lines[1]);

        // Threads short of a core each.
        var shared = probe with { Ceiling = new FmaCeiling(2, 512, 130, 150) { LowestGflops = 145, HighestGflops = 155 } };
        Assert.Contains(shared.Findings(), l => l.Contains("1.15 threads' worth") && l.Contains("do not have a core each"));

        // The same loop moving by more than a quarter between rounds: a busy, shared host.
        var busy = probe with { Ceiling = new FmaCeiling(2, 512, 130, 250) { LowestGflops = 150, HighestGflops = 300 } };
        Assert.Contains(busy.Findings(), l => l.Contains("moved between 150 and 300 GFLOP/s"));
    }

    [Fact]
    public void TheRooflineTakesEachKindOfFlopsAtItsOwnRate()
    {
        var r = new UNetRoofline("512x512", 2, ConvGFlop: 800, MatMulGFlop: 600, AttentionGFlop: 200, []);
        // conv 800 at 200, linear 400 at 100, attention 200 at 50: 4 + 4 + 4 s
        Assert.Equal(12_000, r.IdealMilliseconds(200, 100, 50), 6);
        Assert.Equal(12_000, r.IdealMilliseconds(new ProbeResult(2, MatMulGflops: 100, Conv3x3Gflops: 200) { AttentionGflops = 50 }), 6);
        // Attention as exported runs as MatMuls: at MatMul's rate, 2 s.
        Assert.Equal(10_000, (r with { AttentionFused = false }).IdealMilliseconds(200, 100, 50), 6);
        Assert.Equal(80, new RooflineRound(15_000, 12_000, 200, 100, 50).Percent, 6);
    }

    // A whole UNet call of a real model folder against the probe's chains timed around it, in turns.
    [Fact]
    public void TheUNetStepIsTimedAgainstTheRatesAroundIt()
    {
        var r = UNetRoofline.Run(TinyModels.Folder("optimum"), 64, 64, new Onnx.SessionSettings { IntraOpThreads = 1 }, rounds: 1);
        Assert.Equal("64x64", r.Size);
        Assert.True(r.ConvGFlop > 0 && r.MatMulGFlop > r.AttentionGFlop && r.AttentionGFlop > 0);
        var round = Assert.Single(r.Rounds);
        Assert.True(round.CallMilliseconds > 0 && round.ConvGflops > 0 && round.MatMulGflops > 0 && round.AttentionGflops > 0);
        Assert.Equal(r.IdealMilliseconds(round.ConvGflops, round.MatMulGflops, round.AttentionGflops), round.IdealMilliseconds, 6);
        Assert.Equal(round.Percent, r.MedianPercent, 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => UNetRoofline.Run(TinyModels.Folder("optimum"), 64, 64, Onnx.SessionSettings.Default, rounds: 0));
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
    public void VersusSyncTakesTurnsAndReportsTheRatioOfEachRound()
    {
        using var dir = new TempFolder();
        string json = Path.Combine(dir.Path, "versus.json");
        var error = new StringWriter();
        var output = new StringWriter();
        int code = CliApp.Run(["benchmark", "--model", TinyModels.Folder("optimum"), "--requests", "2", "--steps", "2", "--no-probe", "--concurrency", "2",
            "--max-batch", "2", "--versus-sync", "3", "--json", json], output, error);
        Assert.True(code == 0, error.ToString());
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var rounds = doc.RootElement.GetProperty("Rounds").EnumerateArray().ToArray();
        Assert.Equal(3, rounds.Length);
        var ratios = new List<double>();
        foreach (var round in rounds)
        {
            var sync = round.GetProperty("Sync");
            var engine = round.GetProperty("Async");
            Assert.Equal("sync", sync.GetProperty("Mode").GetString());
            Assert.Equal("async", engine.GetProperty("Mode").GetString());
            Assert.Equal(2, engine.GetProperty("Concurrency").GetInt32());
            Assert.Equal(2, engine.GetProperty("MaxBatch").GetInt32());
            Assert.Equal(2, sync.GetProperty("Images").GetInt32());
            double ratio = engine.GetProperty("ImagesPerMinute").GetDouble() / sync.GetProperty("ImagesPerMinute").GetDouble();
            Assert.Equal(ratio, round.GetProperty("ThroughputRatio").GetDouble(), 9);
            ratios.Add(ratio);
        }
        Assert.Equal(ratios.Order().ElementAt(1), doc.RootElement.GetProperty("MedianThroughputRatio").GetDouble(), 9);
        Assert.Contains("against sync", output.ToString());
        Assert.Contains("median", output.ToString());
    }

    [Fact]
    public void VersusSyncPairsReportsInEitherOrderAndTakesTheMedian()
    {
        var report = BenchmarkRunner.Run(Settings(requests: 1, concurrency: 1));
        BenchmarkReport With(string mode, double perMinute, double p50) =>
            report with { Mode = mode, ImagesPerMinute = perMinute, Latency = report.Latency with { P50 = p50 } };
        var versus = VersusSync.From([With("sync", 10, 1000), With("async", 11, 900), With("async", 9, 1200), With("sync", 10, 1000),
            With("sync", 8, 1000), With("async", 8, 1000)]);
        Assert.Equal([1.1, 0.9, 1.0], versus.Rounds.Select(r => Math.Round(r.ThroughputRatio, 9)));
        Assert.Equal(1.0, versus.MedianThroughputRatio, 9);
        Assert.Equal(0.9, versus.MinThroughputRatio, 9);
        Assert.Equal(1.1, versus.MaxThroughputRatio, 9);
        Assert.Equal(1.0, versus.MedianLatencyRatio, 9);
        Assert.Throws<ArgumentException>(() => VersusSync.From([With("sync", 1, 1), With("sync", 1, 1)]));
        Assert.Throws<ArgumentException>(() => VersusSync.From([With("sync", 1, 1)]));
    }

    [Theory]
    [InlineData("--mode", "sync")]
    [InlineData("--sweep", null)]
    [InlineData("--compare-attention", null)]
    public void VersusSyncRefusesWhatItCannotCompare(string option, string? value)
    {
        var error = new StringWriter();
        string[] args = ["benchmark", "--model", TinyModels.Folder(), "--no-probe", "--versus-sync", "2", option, .. value is null ? Array.Empty<string>() : [value]];
        Assert.Equal(2, CliApp.Run(args, new StringWriter(), error));
        Assert.Contains("--versus-sync measures one async configuration against sync mode", error.ToString());
        error = new StringWriter();
        Assert.NotEqual(0, CliApp.Run(["benchmark", "--model", TinyModels.Folder(), "--no-probe", "--versus-sync", "0x"], new StringWriter(), error));
        Assert.Contains("--versus-sync", error.ToString());
        error = new StringWriter();
        Assert.Equal(2, CliApp.Run(["benchmark", "--model", TinyModels.Folder(), "--no-probe", "--versus-sync", "-1"], new StringWriter(), error));
        Assert.Contains("--versus-sync is -1; expected 1 to 50 rounds", error.ToString());
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
