using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>Counters for monitoring (/metrics) and benchmarks.</summary>
public sealed record EngineStats(int Queued, int Running, long Submitted, long Succeeded, long Failed, long Cancelled, long Rejected, long Images,
    long UNetCalls, long UNetRows, long PromptCacheHits, long PromptCacheMisses, double UNetActiveMs);

/// <summary>
/// Many requests in flight on one model. Async mode runs four stages concurrently with channels
/// between them: prepare (tokenize, text-encode through a prompt cache, encode img2img images,
/// draw initial noise), denoise (S streams taking compatible steps of different requests as one
/// UNet batch), decode (VAE or TAESD) and image encoding. Sync mode runs one request at a time
/// through the synchronous pipeline: the baseline. Both drive images through the same
/// <see cref="ImageJob"/> steps, so a seed gives the same image in either.
/// </summary>
public sealed class DiffusionEngine : IDisposable
{
    private readonly ModelFolder _model;
    private readonly bool _ownsModel;
    private readonly Lazy<TaesdDecoder> _taesd;
    private readonly PromptCache _prompts;
    private readonly DenoiseBatcher _denoise;
    private readonly Channel<Job> _prepare = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<ImageWork> _decode = Channel.CreateUnbounded<ImageWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<ImageWork> _encode = Channel.CreateUnbounded<ImageWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Thread> _threads = new();
    private readonly ConcurrentDictionary<string, Job> _jobs = new();
    private readonly StableDiffusionPipeline? _syncPipeline;
    private int _admitted;
    private long _submitted, _succeeded, _failed, _cancelled, _rejected, _images, _unetCalls, _unetRows;
    private double _averageJobMs = 1000;
    private readonly object _activeLock = new();
    private int _unetRunning;
    private readonly Stopwatch _unetActive = new();
    private double _syncUNetMs;

    /// <summary>Raised once when a job ends (succeeded, failed or cancelled), on the thread that ended it.</summary>
    public event Action<Job>? JobEnded;

    public EngineOptions Options { get; }
    public ModelFolder Model => _model;
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

    /// <summary>ONNX Runtime threads per call: the total divided between the UNet streams; no spinning while stages overlap.</summary>
    public static SessionSettings SessionSettingsFor(EngineOptions options)
    {
        int total = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        return new SessionSettings
        {
            IntraOpThreads = Math.Max(1, total / Math.Max(1, options.Mode == EngineMode.Sync ? 1 : options.Streams)),
            AllowSpinning = options.Mode == EngineMode.Sync,
            Optimization = options.Optimization,
        };
    }

    public DiffusionEngine(ModelFolder model, EngineOptions options, GenerationLimits? limits = null, bool ownsModel = false)
    {
        options.Validate();
        _model = model;
        _ownsModel = ownsModel;
        Options = options;
        Limits = limits ?? GenerationLimits.Default;
        var settings = SessionSettingsFor(options);
        _taesd = new Lazy<TaesdDecoder>(() => Taesd.LoadDecoder(settings));
        _prompts = new PromptCache(model, options.PromptCacheSize);
        _denoise = new DenoiseBatcher(options.MaxBatch, model.UNet.AcceptsPerItemTimesteps);

        if (options.Mode == EngineMode.Sync)
        {
            _syncPipeline = new StableDiffusionPipeline(model, settings, Limits);
            Start("sync", SyncWorker);
        }
        else
        {
            Start("prepare", PrepareWorker);
            for (int s = 0; s < options.Streams; s++) Start($"denoise-{s}", DenoiseWorker);
            Start("decode", DecodeWorker);
            Start("encode", EncodeWorker);
        }
    }

    /// <summary>
    /// Validates and queues a request. Bad input throws <see cref="AsyncDiffusionException"/>;
    /// a full queue throws <see cref="QueueFullException"/> at once. Nothing blocks.
    /// </summary>
    public Job Submit(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        var plan = GenerationPlan.Create(request, _model, Limits);
        int admitted = Interlocked.Increment(ref _admitted);
        if (admitted > Options.MaxJobs)
        {
            Interlocked.Decrement(ref _admitted);
            Interlocked.Increment(ref _rejected);
            double seconds = Math.Clamp(_averageJobMs / 1000.0 * Options.MaxJobs / Math.Max(1, Options.Streams * Options.MaxBatch), 1, 600);
            throw new QueueFullException(Options.MaxJobs, TimeSpan.FromSeconds(seconds));
        }
        Interlocked.Increment(ref _submitted);
        var job = new Job(Guid.NewGuid().ToString("N"), plan);
        _jobs[job.Id] = job;
        job.Emit(new JobQueued(job.Id, admitted));
        // Cancelling ends the job at once (queued or running); stages skip whatever is left of it.
        job.CancellationToken.Register(() => End(job, () => job.Fail(new OperationCanceledException())));
        _prepare.Writer.TryWrite(job);
        return job;
    }

    public Job? Find(string id) => _jobs.TryGetValue(id, out var job) ? job : null;

    /// <summary>A TAESD preview (PNG) of the job's latest latents, or null before its first step.</summary>
    public byte[]? PreviewPng(Job job)
    {
        if (job.LatestLatents is not { } latents) return null;
        // Clients poll progress every second or so: decode each step's preview once.
        int step = job.StepsDone;
        if (Volatile.Read(ref _lastPreview) is { } cached && cached.JobId == job.Id && cached.Step == step) return cached.Png;
        int c = _model.LatentChannels, h = job.Plan.LatentHeight(_model), w = job.Plan.LatentWidth(_model);
        if (latents.Length != c * h * w) return null;
        var image = ImageDecoding.Decode(_model, _taesd.Value, latents, c, h, w, CancellationToken.None);
        var png = ImageCodec.Encode(image, ImageFormat.Png);
        Volatile.Write(ref _lastPreview, new Preview(job.Id, step, png));
        return png;
    }

    private sealed record Preview(string JobId, int Step, byte[] Png);
    private Preview? _lastPreview;

    public EngineStats Stats
    {
        get
        {
            int queued = _jobs.Values.Count(j => j.State == JobState.Queued);
            int running = _jobs.Values.Count(j => j.State == JobState.Running);
            return new EngineStats(queued, running, Interlocked.Read(ref _submitted), Interlocked.Read(ref _succeeded), Interlocked.Read(ref _failed),
                Interlocked.Read(ref _cancelled), Interlocked.Read(ref _rejected), Interlocked.Read(ref _images), Interlocked.Read(ref _unetCalls),
                Interlocked.Read(ref _unetRows), _prompts.Hits, _prompts.Misses, _unetActive.Elapsed.TotalMilliseconds + _syncUNetMs);
        }
    }

    // ---- stages -------------------------------------------------------------------------

    private void PrepareWorker()
    {
        foreach (var job in Drain(_prepare.Reader))
        {
            if (job.IsFinished) continue;
            var run = new JobRun(job);
            try
            {
                job.MarkRunning();
                var plan = job.Plan;
                var prompt = _prompts.Encode(plan.Request.Prompt, plan.Request.NegativePrompt, plan.Request.UsesGuidance, run.Timings, job.CancellationToken);
                InitImageLatents? init = null;
                if (plan.Request.InitImage is { } image)
                {
                    var clock = Stopwatch.StartNew();
                    init = ImageDecoding.EncodeInitImage(_model, image, plan.Width, plan.Height, job.CancellationToken);
                    run.Timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
                }
                var images = Enumerable.Range(0, plan.Seeds.Length)
                    .Select(i => init is null ? ImageJob.TextToImage(plan, i, prompt, _model) : ImageJob.ImageToImage(plan, i, prompt, _model, init))
                    .ToArray();
                job.StepsTotal = images.Sum(i => i.StepsTotal);
                run.ExpectImages(images.Length);
                foreach (var item in images) _denoise.Add(new ImageWork(run, item));
            }
            catch (Exception e)
            {
                End(job, () => job.Fail(e));
            }
        }
    }

    private void DenoiseWorker()
    {
        var unet = _model.UNet;
        int tokens = _model.Tokenizer.MaxLength, hidden = _model.TextEncoder.HiddenSize;
        while (_denoise.Take(_stop.Token) is { } batch)
        {
            batch.RemoveAll(w => w.Run.Job.IsFinished);
            if (batch.Count == 0) continue;

            var first = batch[0].Image;
            int latent = first.LatentSize, rows = batch.Sum(w => w.Image.Rows);
            var samples = new float[rows * latent];
            var context = new float[rows * tokens * hidden];
            var timesteps = new double[rows];
            int row = 0;
            foreach (var w in batch)
            {
                w.Image.WriteInputs(samples.AsSpan(row * latent, w.Image.Rows * latent), context.AsSpan(row * tokens * hidden, w.Image.Rows * tokens * hidden));
                for (int r = 0; r < w.Image.Rows; r++) timesteps[row + r] = w.Image.Timestep;
                row += w.Image.Rows;
            }

            // A lone job may be interrupted inside the UNet; a shared batch runs to the end for the others.
            using var linked = batch.Count == 1 ? CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, batch[0].Run.Job.CancellationToken) : null;
            var clock = Stopwatch.StartNew();
            float[] output;
            UNetActivity(+1);
            try
            {
                output = unet.Predict(samples, [rows, first.Channels, first.LatentHeight, first.LatentWidth], timesteps, context, [rows, tokens, hidden],
                    linked?.Token ?? _stop.Token);
            }
            catch (Exception e)
            {
                foreach (var w in batch) End(w.Run.Job, () => w.Run.Job.Fail(e));
                continue;
            }
            finally
            {
                UNetActivity(-1);
            }
            double ms = clock.Elapsed.TotalMilliseconds;
            Interlocked.Increment(ref _unetCalls);
            Interlocked.Add(ref _unetRows, rows);

            row = 0;
            foreach (var w in batch)
            {
                var job = w.Run.Job;
                int n = w.Image.Rows * latent;
                var slice = output.AsSpan(row * latent, n);
                row += w.Image.Rows;
                if (job.IsFinished) continue;
                try
                {
                    double t = w.Image.Timestep;
                    w.Image.CompleteStep(slice);
                    w.Run.AddStepTime(ms);
                    job.StepDone(w.Image.Index, w.Image.StepsDone, w.Image.StepsTotal, t, w.Image.Latents.ToArray());
                    if (Options.PreviewEvery > 0 && w.Image.StepsDone % Options.PreviewEvery == 0 && !w.Image.IsDenoised) EmitPreview(w);
                    if (w.Image.IsDenoised) _decode.Writer.TryWrite(w);
                    else _denoise.Add(w);
                }
                catch (Exception e)
                {
                    End(job, () => job.Fail(e));
                }
            }
        }
    }

    // Wall time during which at least one stream was inside the UNet (for achieved GFLOP/s).
    private void UNetActivity(int delta)
    {
        lock (_activeLock)
        {
            _unetRunning += delta;
            if (_unetRunning == 1 && delta > 0) _unetActive.Start();
            else if (_unetRunning == 0) _unetActive.Stop();
        }
    }

    private void EmitPreview(ImageWork w)
    {
        var image = ImageDecoding.Decode(_model, _taesd.Value, w.Image.Latents, w.Image.Channels, w.Image.LatentHeight, w.Image.LatentWidth, CancellationToken.None);
        w.Run.Job.Emit(new JobPreview(w.Run.Job.Id, w.Image.Index, w.Image.StepsDone, ImageCodec.Encode(image, ImageFormat.Png)));
    }

    private void DecodeWorker()
    {
        foreach (var w in Drain(_decode.Reader))
        {
            var job = w.Run.Job;
            if (job.IsFinished) continue;
            try
            {
                var clock = Stopwatch.StartNew();
                var taesd = job.Request.Decoder == DecoderKind.Taesd ? _taesd.Value : null;
                w.Decoded = ImageDecoding.Decode(_model, taesd, w.Image.Latents, w.Image.Channels, w.Image.LatentHeight, w.Image.LatentWidth, job.CancellationToken);
                w.Run.AddDecodeTime(clock.Elapsed.TotalMilliseconds);
                w.Run.Memory.Sample();
                _encode.Writer.TryWrite(w);
            }
            catch (Exception e)
            {
                End(job, () => job.Fail(e));
            }
        }
    }

    private void EncodeWorker()
    {
        foreach (var w in Drain(_encode.Reader))
        {
            var run = w.Run;
            var job = run.Job;
            if (job.IsFinished) continue;
            try
            {
                var clock = Stopwatch.StartNew();
                string info = GenerationInfotext.For(job.Plan, w.Image.Seed);
                run.Images[w.Image.Index] = new GeneratedImage(w.Decoded!, w.Image.Seed, info);
                run.Files[w.Image.Index] = ImageCodec.Encode(w.Decoded!, Options.OutputFormat, info);
                lock (run.Timings) run.Timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
                Interlocked.Increment(ref _images);
                job.Emit(new JobImageReady(job.Id, w.Image.Index, w.Image.Seed));
                if (run.ImageFinished()) Complete(run);
            }
            catch (Exception e)
            {
                End(job, () => job.Fail(e));
            }
        }
    }

    private void Complete(JobRun run)
    {
        var job = run.Job;
        run.Timings.TotalMs = run.Clock.Elapsed.TotalMilliseconds;
        var plan = job.Plan;
        var generation = new GenerationResult(run.Images.Select(i => i!).ToArray(), run.Timings, run.Memory.Peak, plan.Width, plan.Height, plan.SchedulerName);
        double wait = ((job.StartedAt ?? DateTime.UtcNow) - job.SubmittedAt).TotalMilliseconds;
        End(job, () => job.Succeed(new JobResult(generation, run.Files.Select(f => f!).ToArray(), wait)));
    }

    private void SyncWorker()
    {
        foreach (var job in Drain(_prepare.Reader))
        {
            if (job.IsFinished) continue;
            try
            {
                job.MarkRunning();
                job.StepsTotal = job.Plan.Seeds.Length * job.Plan.StepsPerImage;
                var request = job.Request with { Seed = job.Plan.Seeds[0] };
                var result = _syncPipeline!.Generate(request,
                    s => job.StepDone(s.ImageIndex, s.Step, s.Steps, s.Timestep, s.Latents.ToArray()), job.CancellationToken);
                var clock = Stopwatch.StartNew();
                var files = result.Images.Select(i => ImageCodec.Encode(i.Image, Options.OutputFormat, i.Infotext)).ToArray();
                result.Timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
                Interlocked.Add(ref _images, result.Images.Count);
                Interlocked.Add(ref _unetCalls, result.Timings.UNetStepMs.Count);
                Interlocked.Add(ref _unetRows, result.Timings.UNetStepMs.Count * (request.UsesGuidance ? 2 : 1));
                lock (_activeLock) _syncUNetMs += result.Timings.UNetTotalMs;
                double wait = ((job.StartedAt ?? DateTime.UtcNow) - job.SubmittedAt).TotalMilliseconds;
                End(job, () => job.Succeed(new JobResult(result, files, wait)));
            }
            catch (Exception e)
            {
                End(job, () => job.Fail(e));
            }
        }
    }

    // ---- plumbing -----------------------------------------------------------------------

    /// <summary>Ends a job once: frees its admission slot and counts the outcome.</summary>
    private void End(Job job, Func<bool> transition)
    {
        if (!transition()) return;
        Interlocked.Decrement(ref _admitted);
        switch (job.State)
        {
            case JobState.Succeeded:
                Interlocked.Increment(ref _succeeded);
                double ms = (DateTime.UtcNow - job.SubmittedAt).TotalMilliseconds;
                _averageJobMs = 0.8 * _averageJobMs + 0.2 * ms;
                break;
            case JobState.Cancelled: Interlocked.Increment(ref _cancelled); break;
            default: Interlocked.Increment(ref _failed); break;
        }
        try { JobEnded?.Invoke(job); }
        catch (Exception) { /* observers must not break the engine */ }
        // Keep finished jobs findable for a while, but bounded.
        if (_jobs.Count > 4 * Options.MaxJobs + 256)
            foreach (var old in _jobs.Values.Where(j => j.IsFinished).OrderBy(j => j.SubmittedAt).Take(_jobs.Count / 2))
                _jobs.TryRemove(old.Id, out _);
    }

    private IEnumerable<T> Drain<T>(ChannelReader<T> reader)
    {
        while (true)
        {
            T item;
            try
            {
                if (!reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult()) yield break;
                if (!reader.TryRead(out item!)) continue;
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
            yield return item;
        }
    }

    private void Start(string name, Action body)
    {
        var thread = new Thread(() => body()) { IsBackground = true, Name = $"asyncdiffusion-{name}" };
        _threads.Add(thread);
        thread.Start();
    }

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _prepare.Writer.TryComplete();
        _decode.Writer.TryComplete();
        _encode.Writer.TryComplete();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(30));
        foreach (var job in _jobs.Values) End(job, () => job.Fail(new OperationCanceledException()));
        _syncPipeline?.Dispose();
        if (_taesd.IsValueCreated) _taesd.Value.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
