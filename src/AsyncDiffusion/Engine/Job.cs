using System.Threading.Channels;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

public enum JobState { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>What happens to a job, in order: queued, started, steps (and previews), images, then one of finished / failed / cancelled.</summary>
public abstract record JobEvent(string JobId);
public sealed record JobQueued(string JobId, int Position) : JobEvent(JobId);
public sealed record JobStarted(string JobId) : JobEvent(JobId);
public sealed record JobStep(string JobId, int ImageIndex, int Step, int Steps, double Timestep) : JobEvent(JobId);
public sealed record JobPreview(string JobId, int ImageIndex, int Step, byte[] Png) : JobEvent(JobId);
public sealed record JobImageReady(string JobId, int ImageIndex, long Seed) : JobEvent(JobId);
public sealed record JobFinished(string JobId, JobResult Result) : JobEvent(JobId);
public sealed record JobFailed(string JobId, string Error) : JobEvent(JobId);
public sealed record JobCancelled(string JobId) : JobEvent(JobId);

/// <summary>A finished job: the images (and their encoded files), timings and the plan that made them.</summary>
public sealed record JobResult(GenerationResult Generation, IReadOnlyList<byte[]> Files, double QueueWaitMs);

/// <summary>
/// One submitted request. Its events can be read as a stream; <see cref="Completion"/> gives
/// the result (or the error); <see cref="Cancel"/> works while it is queued or running.
/// </summary>
public sealed class Job
{
    private readonly Channel<JobEvent> _events = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly TaskCompletionSource<JobResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _cancel = new();
    private int _state = (int)JobState.Queued;
    private int _stepsDone;

    internal Job(string id, GenerationPlan plan)
    {
        Id = id;
        Plan = plan;
        SubmittedAt = DateTime.UtcNow;
    }

    public string Id { get; }
    public GenerationPlan Plan { get; }
    public GenerationRequest Request => Plan.Request;
    public DateTime SubmittedAt { get; }
    public DateTime? StartedAt { get; internal set; }
    public JobState State => (JobState)Volatile.Read(ref _state);
    public Task<JobResult> Completion => _completion.Task;
    public CancellationToken CancellationToken => _cancel.Token;

    /// <summary>Steps finished over all images, and the total (for progress bars).</summary>
    public int StepsDone => Volatile.Read(ref _stepsDone);
    public int StepsTotal { get; internal set; }

    /// <summary>Latest latents of the image being denoised (for previews); null before the first step.</summary>
    public float[]? LatestLatents { get; internal set; }
    public int LatestImageIndex { get; internal set; }

    public ChannelReader<JobEvent> Events => _events.Reader;

    public IAsyncEnumerable<JobEvent> ReadEventsAsync(CancellationToken cancellation = default) => _events.Reader.ReadAllAsync(cancellation);

    /// <summary>Cancels the job; returns false when it had already ended.</summary>
    public bool Cancel()
    {
        if (State is JobState.Succeeded or JobState.Failed or JobState.Cancelled) return false;
        _cancel.Cancel();
        return true;
    }

    internal void Emit(JobEvent e) => _events.Writer.TryWrite(e);

    internal void MarkRunning()
    {
        if (Interlocked.CompareExchange(ref _state, (int)JobState.Running, (int)JobState.Queued) == (int)JobState.Queued)
        {
            StartedAt = DateTime.UtcNow;
            Emit(new JobStarted(Id));
        }
    }

    internal void StepDone(int image, int step, int steps, double timestep, float[] latents)
    {
        Interlocked.Increment(ref _stepsDone);
        LatestLatents = latents;
        LatestImageIndex = image;
        Emit(new JobStep(Id, image, step, steps, timestep));
    }

    internal bool Succeed(JobResult result) => Finish(JobState.Succeeded, new JobFinished(Id, result), () => _completion.TrySetResult(result));

    internal bool Fail(Exception error)
    {
        if (error is OperationCanceledException || _cancel.IsCancellationRequested)
            return Finish(JobState.Cancelled, new JobCancelled(Id), () => _completion.TrySetCanceled());
        string message = error is AsyncDiffusionException ? error.Message : $"Internal error: {error.Message}";
        return Finish(JobState.Failed, new JobFailed(Id, message), () => _completion.TrySetException(error));
    }

    private bool Finish(JobState state, JobEvent last, Action complete)
    {
        int current = Volatile.Read(ref _state);
        while (current is (int)JobState.Queued or (int)JobState.Running)
        {
            int seen = Interlocked.CompareExchange(ref _state, (int)state, current);
            if (seen == current)
            {
                Emit(last);
                _events.Writer.TryComplete();
                complete();
                return true;
            }
            current = seen;
        }
        return false;
    }

    internal bool IsFinished => State is JobState.Succeeded or JobState.Failed or JobState.Cancelled;
}

/// <summary>Submission refused because the engine is at its admission limit; try again after <see cref="RetryAfter"/>.</summary>
public sealed class QueueFullException(int limit, TimeSpan retryAfter)
    : AsyncDiffusionException($"The queue is full ({limit} jobs queued or running); retry in about {Math.Ceiling(retryAfter.TotalSeconds)} s.")
{
    public int Limit { get; } = limit;
    public TimeSpan RetryAfter { get; } = retryAfter;
}
