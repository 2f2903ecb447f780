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

    /// <summary>
    /// Heavy ONNX Runtime calls (text encoder, VAE, UNet, decoders) take turns: at most one per
    /// stream at a time, each with its share of the threads, so they never oversubscribe the
    /// cores; light work still overlaps. Off: every stage runs its calls whenever it likes.
    /// </summary>
    public bool ExclusiveCompute { get; init; } = true;

    /// <summary>Where optimised graphs are kept between starts (see <see cref="Onnx.OptimizedModelCache"/>); null: optimise at every load.</summary>
    public string? OptimizedModelCache { get; init; }

    /// <summary>What generations trade for peak memory (guidance calls, decode tiles); <see cref="Pipelines.MemoryBudget"/> picks one for a budget.</summary>
    public Onnx.MemoryPolicy Memory { get; init; } = Onnx.MemoryPolicy.Default;

    /// <summary>Rewrite attention into ONNX Runtime's fused MultiHeadAttention at load (see <see cref="Onnx.SessionSettings.FuseAttention"/>).</summary>
    public bool FuseAttention { get; init; } = true;

    /// <summary>Why this configuration was chosen (for logs and /ready); null when given explicitly.</summary>
    public string? Rationale { get; init; }

    /// <summary>ONNX Runtime graph optimisation: all (fastest steps, default) or basic (fastest load).</summary>
    public Microsoft.ML.OnnxRuntime.GraphOptimizationLevel Optimization { get; init; } = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// The default for a machine with <paramref name="cores"/> cores: the tuned configuration when
    /// there is one (measured here), otherwise one stream per 4 cores, one image per UNet call.
    /// ONNX Runtime's SD convolutions and MatMuls scale well up to about 4 threads and less well
    /// beyond, while one request keeps up to 4 cores busy on its own: on small machines one stream
    /// with all threads and heavy calls taking turns matches sync mode. One image's guidance
    /// batch (2 rows) already keeps the operators compute-bound at SD sizes, so more images per
    /// call do not pay on a CPU: measured on 2 cores (256 px, `benchmark --versus-sync`), 2 images
    /// per call ran up to 10 % slower per row and 0.93× sync at 4 clients, 1 image 1.03×. Two
    /// one-thread streams reached 1.10× there, but leave a lone request one thread; `tune` finds
    /// such configurations (streams, larger batches) where a machine rewards them.
    /// </summary>
    public static EngineOptions Automatic(int cores, TunedConfig? tuned = null)
    {
        cores = Math.Max(1, cores);
        if (tuned is not null)
            return tuned.ToOptions() with
            {
                Rationale = $"tuned on this machine: {tuned.Streams} stream(s) × batch {tuned.MaxBatch}{(tuned.ExclusiveCompute ? "" : ", heavy calls overlapping")}, {tuned.ImagesPerMinute:F1} images/min at p99 {tuned.P99Ms / 1000:F1} s ({tuned.Model}, {tuned.Size}, {tuned.Steps} steps)",
            };
        int streams = Math.Max(1, cores / 4);
        return new EngineOptions
        {
            Mode = EngineMode.Async,
            Streams = streams,
            Threads = cores,
            MaxBatch = 1,
            ExclusiveCompute = true,
            Rationale = streams == 1
                ? $"{cores} core(s): one request fills them, so one stream with all {cores} threads, spinning on, heavy calls taking turns, one image per UNet call, oldest request first (as fast as sync, with sync's latencies)"
                : $"{cores} cores: {streams} streams of {cores / streams} threads (SD operators scale well to about 4 threads), heavy calls limited to one per stream, one image per UNet call, oldest request first",
        };
    }

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
