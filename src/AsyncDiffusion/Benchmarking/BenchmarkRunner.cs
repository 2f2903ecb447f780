using System.Diagnostics;
using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Benchmarking;

/// <summary>What to measure: a model, an engine configuration and a closed-loop load.</summary>
public sealed record BenchmarkSettings
{
    public required string ModelFolder { get; init; }
    public required EngineOptions Engine { get; init; }
    public required GenerationRequest Request { get; init; }

    /// <summary>Measured requests (after warm-up).</summary>
    public int Requests { get; init; } = 8;

    /// <summary>Clients submitting in a closed loop (each waits for its result before sending the next).</summary>
    public int Concurrency { get; init; } = 1;

    /// <summary>Warm-up requests; the first one is reported as the cold (first-image) latency.</summary>
    public int Warmup { get; init; } = 1;

    /// <summary>Vary prompts and schedulers across requests, as a server sees them.</summary>
    public bool Mixed { get; init; }

    /// <summary>Measure the machine's MatMul/Conv peak first, for "% of peak".</summary>
    public bool Probe { get; init; } = true;

    /// <summary>
    /// Load the model once into a fresh, temporary optimised-graph cache first (a cold start:
    /// optimise, rewrite, save), then measure from that cache (a warm start), so the report has both load times.
    /// </summary>
    public bool ColdLoad { get; init; }

    /// <summary>A label for this run in comparisons (e.g. "fused attention").</summary>
    public string? Variant { get; init; }
}

public sealed record StageLatencies(double QueueWaitMs, double TextEncodeMs, double UNetStepMs, double UNetPerImageMs, double DecodeMs, double ImageEncodeMs);

/// <summary>Achieved arithmetic rate of one model component, from counted FLOPs and measured busy time.</summary>
public sealed record ComponentRate(string Component, double GFlopPerCall, long Calls, double BusySeconds, double Gflops, double? PercentOfPeak);

public sealed record BenchmarkReport(
    MachineDescription Machine,
    ProbeResult? Probe,
    string Model,
    string Mode,
    int Streams,
    int MaxBatch,
    int Concurrency,
    int Requests,
    int Images,
    string Size,
    int Steps,
    string Scheduler,
    string Decoder,
    int ThreadsPerCall,
    double LoadSeconds,
    double ColdLatencyMs,
    double WallSeconds,
    double ImagesPerMinute,
    LatencySummary Latency,
    StageLatencies Stages,
    ComponentRate[] Rates,
    long PeakRssBytes,
    long PeakManagedBytes,
    double CpuUtilisation,
    long UNetCalls,
    double RowsPerUNetCall)
{
    /// <summary>How each component was loaded for the measured run (time, cache hit or optimised now, fused attentions).</summary>
    public IReadOnlyList<Onnx.ModelLoad> Loads { get; init; } = [];

    /// <summary>With <see cref="BenchmarkSettings.ColdLoad"/>: the cold load into a fresh cache that preceded the measured (warm) one.</summary>
    public IReadOnlyList<Onnx.ModelLoad>? ColdLoads { get; init; }

    /// <summary>The label of this run in comparisons, if any.</summary>
    public string? Variant { get; init; }
}

/// <summary>
/// Runs one benchmark configuration: loads the model into an engine (timed), sends a cold
/// request and warm-ups, then a closed-loop load, and reports latency percentiles, per-stage
/// times, throughput, memory, CPU use and achieved GFLOP/s against the probed peak.
/// </summary>
public static class BenchmarkRunner
{
    private static readonly string[] Prompts =
    [
        "a photo of an astronaut riding a horse on mars",
        "a watercolor painting of a lighthouse at dawn",
        "a cozy cabin in a snowy forest, warm light",
        "portrait of an old fisherman, dramatic lighting",
    ];

    private static readonly string[] Schedulers = ["Euler a", "DPM++ 2M", "Euler", "DDIM"];

    public static BenchmarkReport Run(BenchmarkSettings settings, Action<string>? log = null)
    {
        log ??= _ => { };
        var machine = MachineDescription.Current();
        int threadsPerCall = DiffusionEngine.SessionSettingsFor(settings.Engine).IntraOpThreads;
        ProbeResult? probe = null;
        if (settings.Probe)
        {
            log($"Probing MatMul and 3x3 Conv at {threadsPerCall} thread(s)…");
            probe = MachineProbe.Run(threadsPerCall);
        }

        using var freshCache = settings.ColdLoad ? new TemporaryFolder("asyncdiffusion-cold-cache-") : null;
        IReadOnlyList<Onnx.ModelLoad>? coldLoads = null;
        var engineOptions = settings.Engine;
        if (freshCache is not null)
        {
            engineOptions = engineOptions with { OptimizedModelCache = freshCache.Path };
            log("Cold load into an empty optimised-graph cache…");
            using var first = Models.ModelFolder.Open(settings.ModelFolder, DiffusionEngine.SessionSettingsFor(engineOptions));
            coldLoads = first.Loads;
        }

        // Each run reports its own peak, also when several run in one process (sweeps, --compare).
        PeakMemory.ResetProcessPeak();
        log("Loading the model…");
        var load = Stopwatch.StartNew();
        using var engine = DiffusionEngine.Open(settings.ModelFolder, engineOptions);
        double loadSeconds = load.Elapsed.TotalSeconds;

        var template = settings.Request with { Seed = settings.Request.Seed < 0 ? 1 : settings.Request.Seed };
        GenerationRequest RequestFor(int i) => settings.Mixed
            ? template with { Prompt = Prompts[i % Prompts.Length], Scheduler = Schedulers[i % Schedulers.Length], Seed = template.Seed + i }
            : template with { Seed = template.Seed + i };

        log("Cold request…");
        var cold = Stopwatch.StartNew();
        engine.Submit(RequestFor(0)).Completion.GetAwaiter().GetResult();
        double coldMs = cold.Elapsed.TotalMilliseconds;
        for (int w = 1; w < settings.Warmup; w++) engine.Submit(RequestFor(w)).Completion.GetAwaiter().GetResult();

        log($"Measuring {settings.Requests} requests at concurrency {settings.Concurrency}…");
        var before = engine.Stats;
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        long peakManaged = GC.GetTotalMemory(false);
        using var sampler = new Timer(_ => Interlocked.Exchange(ref peakManaged, Math.Max(Interlocked.Read(ref peakManaged), GC.GetTotalMemory(false))), null, 0, 200);

        var results = new JobResult[settings.Requests];
        var latencies = new double[settings.Requests];
        int next = -1;
        var wall = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Math.Max(1, settings.Concurrency)).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < settings.Requests)
            {
                var clock = Stopwatch.StartNew();
                while (true)
                {
                    try
                    {
                        results[i] = await engine.Submit(RequestFor(settings.Warmup + i)).Completion;
                        break;
                    }
                    catch (QueueFullException full)
                    {
                        await Task.Delay(full.RetryAfter < TimeSpan.FromSeconds(1) ? full.RetryAfter : TimeSpan.FromMilliseconds(200));
                    }
                }
                latencies[i] = clock.Elapsed.TotalMilliseconds;
            }
        })).ToArray();
        Task.WaitAll(clients);
        double wallSeconds = wall.Elapsed.TotalSeconds;
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds / (wallSeconds * Environment.ProcessorCount);
        var after = engine.Stats;

        int images = results.Sum(r => r.Generation.Images.Count);
        var timings = results.Select(r => r.Generation.Timings).ToArray();
        int stepsPerImage = Math.Max(1, timings.Sum(t => t.UNetStepMs.Count) / Math.Max(1, images));
        var stages = new StageLatencies(
            results.Average(r => r.QueueWaitMs),
            timings.Average(t => t.TextEncodeMs),
            timings.SelectMany(t => t.UNetStepMs).DefaultIfEmpty().Average(),
            timings.Sum(t => t.UNetTotalMs) / Math.Max(1, images),
            timings.Sum(t => t.DecodeMs) / Math.Max(1, images),
            timings.Sum(t => t.ImageEncodeMs) / Math.Max(1, images));

        var model = engine.Model;
        var plan = GenerationPlan.Create(template, model);
        var rates = Rates(model, plan, settings, after, before, timings, images, probe);
        return new BenchmarkReport(machine, probe, model.Path, settings.Engine.Mode.ToString().ToLowerInvariant(), settings.Engine.Streams, settings.Engine.MaxBatch,
            settings.Concurrency, settings.Requests, images, $"{plan.Width}x{plan.Height}", settings.Request.Steps, settings.Mixed ? "mixed" : plan.SchedulerName,
            settings.Request.Decoder.ToString().ToLowerInvariant(), threadsPerCall, loadSeconds, coldMs, wallSeconds, images / wallSeconds * 60,
            LatencySummary.Of(latencies), stages, rates, PeakMemory.ProcessPeak(), peakManaged, cpu, after.UNetCalls - before.UNetCalls,
            (after.UNetRows - before.UNetRows) / (double)Math.Max(1, after.UNetCalls - before.UNetCalls))
        {
            Loads = engine.Model.Loads,
            ColdLoads = coldLoads,
            Variant = settings.Variant,
        };
    }

    /// <summary>A folder deleted with everything in it when disposed (the cold-load cache).</summary>
    private sealed class TemporaryFolder(string prefix) : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private static ComponentRate[] Rates(ModelFolder model, GenerationPlan plan, BenchmarkSettings s, EngineStats after, EngineStats before,
        StageTimings[] timings, int images, ProbeResult? probe)
    {
        int c = model.LatentChannels, h = plan.LatentHeight, w = plan.LatentWidth;
        int tokens = model.Tokenizer.MaxLength, hidden = model.TextEncoder.HiddenSize;
        var inputs = model.UNet.InputsInOrder;
        var unet = FlopCounter.Count(Path.Combine(model.Path, "unet", "model.onnx"),
            new Dictionary<string, long[]> { [inputs[0]] = [1, model.UNet.InputChannels, h, w], [inputs[1]] = model.UNet.TimestepShape(1), [inputs[2]] = [1, tokens, hidden] });
        var text = FlopCounter.Count(Path.Combine(model.Path, "text_encoder", "model.onnx"), new Dictionary<string, long[]> { [model.TextEncoder.Model.InputNames[0]] = [1, tokens] });
        var vae = s.Request.Decoder == DecoderKind.Taesd
            ? FlopCounter.Count(global::Onnx.ModelProto.Parser.ParseFrom(Taesd.BuildDecoder(Taesd.BuiltInDecoderWeights)).Graph, new Dictionary<string, long[]> { ["latent_sample"] = [1, c, h, w] })
            : FlopCounter.Count(Path.Combine(model.Path, "vae_decoder", "model.onnx"), new Dictionary<string, long[]> { [model.VaeDecoder.Model.InputNames[0]] = [1, c, h, w] });

        ComponentRate Rate(string name, FlopCount f, long calls, double busyMs)
        {
            double gflops = busyMs > 0 ? f.Total * calls / (busyMs / 1000) / 1e9 : 0;
            return new ComponentRate(name, f.GFlop, calls, busyMs / 1000, gflops, probe is null ? null : 100 * gflops / probe.PeakGflops);
        }
        return
        [
            Rate("unet (per row)", unet, after.UNetRows - before.UNetRows, after.UNetActiveMs - before.UNetActiveMs),
            Rate("text encoder (per prompt)", text,
                s.Engine.Mode == EngineMode.Sync ? timings.Length * (s.Request.UsesGuidance ? 2 : 1) : after.PromptCacheMisses - before.PromptCacheMisses,
                timings.Sum(t => t.TextEncodeMs)),
            Rate(s.Request.Decoder == DecoderKind.Taesd ? "taesd decoder" : "vae decoder", vae, images, timings.Sum(t => t.DecodeMs)),
        ];
    }
}
