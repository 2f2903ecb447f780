using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

public enum EngineMode
{
    /// <summary>One request at a time through every stage: the baseline.</summary>
    Sync,
    /// <summary>Stages overlap across requests; denoising steps of different requests are batched.</summary>
    Async,
}

/// <summary>How the engine arranges its work. <see cref="ForHint"/> gives the two presets.</summary>
public sealed record EngineOptions
{
    public EngineMode Mode { get; init; } = EngineMode.Async;

    /// <summary>Denoise workers running UNet batches concurrently on the one shared UNet session.</summary>
    public int Streams { get; init; } = 1;

    /// <summary>Most images per UNet call (each image brings 2 rows with guidance).</summary>
    public int MaxBatch { get; init; } = 4;

    /// <summary>Admission limit: queued + running jobs. Beyond it, submission fails at once with <see cref="QueueFullException"/>.</summary>
    public int MaxJobs { get; init; } = 32;

    /// <summary>
    /// Most bytes (encoded files plus decoded pixels) the results of finished jobs may hold while
    /// they are kept for lookup; the oldest are let go first.
    /// </summary>
    public long RetainedResultBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>ONNX Runtime threads in total (0: one per core); the UNet session gets Threads / Streams per call.</summary>
    public int Threads { get; init; }

    /// <summary>Prompt embeddings kept for reuse (servers see the same prompts again and again).</summary>
    public int PromptCacheSize { get; init; } = 64;

    /// <summary>Decode a TAESD preview every N steps (0: never).</summary>
    public int PreviewEvery { get; init; }

    public ImageFormat OutputFormat { get; init; } = ImageFormat.Png;

    /// <summary>ONNX Runtime graph optimisation: all (fastest steps, default) or basic (fastest load).</summary>
    public Microsoft.ML.OnnxRuntime.GraphOptimizationLevel Optimization { get; init; } = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL;

    public static EngineOptions ForHint(string hint, int cores) => hint.Trim().ToLowerInvariant() switch
    {
        "latency" => new EngineOptions { Mode = EngineMode.Async, Streams = 1, MaxBatch = 1 },
        "throughput" => new EngineOptions { Mode = EngineMode.Async, Streams = Math.Max(1, cores / 2), MaxBatch = 4 },
        _ => throw new AsyncDiffusionException($"Unknown hint '{hint}'; expected latency or throughput."),
    };

    internal void Validate()
    {
        if (Streams < 1 || Streams > 64) throw new AsyncDiffusionException($"streams is {Streams}; expected 1 to 64.");
        if (MaxBatch < 1 || MaxBatch > 64) throw new AsyncDiffusionException($"max batch is {MaxBatch}; expected 1 to 64.");
        if (MaxJobs < 1) throw new AsyncDiffusionException($"max jobs is {MaxJobs}; expected at least 1.");
        if (RetainedResultBytes < 0) throw new AsyncDiffusionException($"retained result bytes is {RetainedResultBytes}; expected 0 or more.");
        if (Threads < 0) throw new AsyncDiffusionException($"threads is {Threads}; expected 0 (one per core) or more.");
    }
}
