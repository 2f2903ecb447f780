using AsyncDiffusion.Engine.Stages;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// Many requests in flight on one model: the asynchronous driver. <see cref="Submit"/> plans a
/// request once and admits it as a <see cref="Job"/>; stages on their own threads carry it
/// through the queues of <see cref="StageQueues"/>: prepare, denoise (S streams batching
/// compatible steps of different requests through the denoising core), decode and image
/// encoding. Sync mode runs one job at a time through the synchronous driver: the baseline.
/// Both step images through the same <see cref="DenoisingImage"/> state machine, so a seed gives
/// the same image in either.
/// </summary>
public sealed class DiffusionEngine : IDisposable
{
    private readonly bool _ownsModel;
    private readonly LatentDecoders _decoders;
    private readonly PromptCache _prompts;
    private readonly StageQueues _queues;
    private readonly JobRegistry _registry;
    private readonly UNetActivity _unet = new();
    private readonly PreviewCache _previews;
    private readonly StableDiffusionPipeline? _syncPipeline;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Thread> _threads = new();
    private long _images;

    /// <summary>Raised once when a job ends (succeeded, failed or cancelled), on the thread that ended it.</summary>
    public event Action<Job>? JobEnded
    {
        add => _registry.JobEnded += value;
        remove => _registry.JobEnded -= value;
    }

    public EngineOptions Options { get; }
    public ModelFolder Model { get; }
    public GenerationLimits Limits { get; }

    /// <summary>Opens <paramref name="modelFolder"/> with threads divided between the streams, and starts the stages.</summary>
    public static DiffusionEngine Open(string modelFolder, EngineOptions options, GenerationLimits? limits = null)
    {
        options.Validate();
        var model = ModelFolder.Open(modelFolder, SessionSettingsFor(options));
        try
        {
            return new DiffusionEngine(model, options, limits, ownsModel: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// ONNX Runtime threads per call: the total divided between the UNet streams. Threads spin
    /// between operators (as in sync mode) only when heavy calls take turns
    /// (<see cref="EngineOptions.ExclusiveCompute"/>); spinning threads of overlapping calls
    /// would steal each other's cores.
    /// </summary>
    public static SessionSettings SessionSettingsFor(EngineOptions options)
    {
        int total = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        return new SessionSettings
        {
            IntraOpThreads = Math.Max(1, total / Math.Max(1, options.Mode == EngineMode.Sync ? 1 : options.Streams)),
            AllowSpinning = options.Mode == EngineMode.Sync || options.ExclusiveCompute,
            Optimization = options.Optimization,
            OptimizedModelCache = options.OptimizedModelCache,
            FuseAttention = options.FuseAttention,
            Memory = options.Memory,
        };
    }

    public DiffusionEngine(ModelFolder model, EngineOptions options, GenerationLimits? limits = null, bool ownsModel = false)
    {
        options.Validate();
        Model = model;
        _ownsModel = ownsModel;
        Options = options;
        Limits = limits ?? GenerationLimits.Default;
        var settings = SessionSettingsFor(options);
        _decoders = new LatentDecoders(model, settings);
        _prompts = new PromptCache(model, options.PromptCacheSize);
        var gate = new ComputeGate(options.Mode == EngineMode.Async && options.ExclusiveCompute ? options.Streams : 0);
        _previews = new PreviewCache(_decoders, gate);
        _registry = new JobRegistry(options.MaxJobs, options.Streams, options.MaxBatch, options.RetainedResultBytes);
        _queues = new StageQueues(new DenoiseQueue(options.MaxBatch, model.UNet));
        void ImagesMade(int n) => Interlocked.Add(ref _images, n);

        if (options.Mode == EngineMode.Sync)
        {
            _syncPipeline = new StableDiffusionPipeline(model, settings, Limits);
            Start("sync", new SyncStage(_queues, _syncPipeline, _registry, _unet, options.OutputFormat, ImagesMade).Run);
        }
        else
        {
            Start("prepare", new PrepareStage(_queues, new RequestPreparation(model, _prompts), _registry, gate).Run);
            for (int s = 0; s < options.Streams; s++)
                Start($"denoise-{s}", new DenoiseStage(_queues, model, _registry, _unet, _previews, options.PreviewEvery, gate).Run);
            Start("decode", new DecodeStage(_queues, _decoders, new HiresUpscaling(model, _decoders), _registry, gate).Run);
            Start("encode", new EncodeStage(_queues, _registry, options.OutputFormat, ImagesMade).Run);
        }
    }

    /// <summary>
    /// Validates and queues a request. Bad input throws <see cref="AsyncDiffusionException"/>;
    /// a full queue throws <see cref="QueueFullException"/> at once. Nothing blocks.
    /// </summary>
    public Job Submit(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        if (Options.Memory.SequentialGuidance) request = request with { CfgAsBatch = false };
        var job = _registry.Admit(GenerationPlan.Create(request, Model, Limits));
        // Cancelling ends the job at once (queued or running); stages skip whatever is left of it.
        job.CancellationToken.Register(() => _registry.Fail(job, new OperationCanceledException()));
        _queues.Prepare.Writer.TryWrite(job);
        return job;
    }

    public Job? Find(string id) => _registry.Find(id);

    /// <summary>A TAESD preview (PNG) of the job's latest latents, or null before its first step.</summary>
    public byte[]? PreviewPng(Job job) => _previews.Of(job);

    /// <summary>Previews decoded for <see cref="PreviewPng"/> so far: at most one per job step, however many clients poll.</summary>
    public long PreviewDecodes => _previews.Decodes;

    public EngineStats Stats => new(_registry.Queued, _registry.Running, _registry.Submitted, _registry.Succeeded, _registry.Failed,
        _registry.Cancelled, _registry.Rejected, Interlocked.Read(ref _images), _unet.Calls, _unet.Rows, _prompts.Hits, _prompts.Misses, _unet.ActiveMs);

    private void Start(string name, Action<CancellationToken> stage)
    {
        var thread = new Thread(() => stage(_stop.Token)) { IsBackground = true, Name = $"asyncdiffusion-{name}" };
        _threads.Add(thread);
        thread.Start();
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _queues.Complete();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(30));
        foreach (var job in _registry.All) _registry.Fail(job, new OperationCanceledException());
        _syncPipeline?.Dispose();
        _decoders.Dispose();
        if (_ownsModel) Model.Dispose();
    }
}
