using System.Threading.Channels;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// One submitted request. Any number of watchers can follow its events (<see cref="Watch"/>):
/// each gets the job's history so far (previews excepted) and then every new event.
/// <see cref="Completion"/> gives the result (or the error); <see cref="Cancel"/> works while it
/// is queued or running.
/// </summary>
public sealed class Job
{
    private readonly object _lock = new();
    private readonly List<JobEvent> _history = new(); // small records; previews are not kept
    private readonly List<ChannelWriter<JobEvent>> _watchers = new();
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
    public DateTime? StartedAt { get; private set; }
    public JobState State => (JobState)Volatile.Read(ref _state);
    public bool IsFinished => State is JobState.Succeeded or JobState.Failed or JobState.Cancelled;
    public Task<JobResult> Completion => _completion.Task;
    public CancellationToken CancellationToken => _cancel.Token;

    /// <summary>The failure of a failed job; for internal failures <see cref="ErrorId"/> ties the client's message to the log.</summary>
    public Exception? Error { get; private set; }
    public string? ErrorId { get; private set; }

    /// <summary>Steps finished over all images, and the total (for progress bars).</summary>
    public int StepsDone => Volatile.Read(ref _stepsDone);
    public int StepsTotal => Plan.Seeds.Length * Plan.StepsPerImage;

    /// <summary>Latest latents of the image being denoised (for previews), their [h, w] and which image they are; null before the first step.</summary>
    public float[]? LatestLatents { get; private set; }
    public (int Height, int Width) LatestLatentSize { get; private set; }
    public int LatestImageIndex { get; private set; }

    /// <summary>A new watcher: the events so far (previews excepted), then every event as it happens, until the job ends.</summary>
    public ChannelReader<JobEvent> Watch()
    {
        var channel = Channel.CreateUnbounded<JobEvent>(new UnboundedChannelOptions { SingleReader = true });
        lock (_lock)
        {
            foreach (var e in _history) channel.Writer.TryWrite(e);
            if (IsFinished) channel.Writer.TryComplete();
            else _watchers.Add(channel.Writer);
        }
        return channel.Reader;
    }

    public IAsyncEnumerable<JobEvent> ReadEventsAsync(CancellationToken cancellation = default) => Watch().ReadAllAsync(cancellation);

    /// <summary>Cancels the job; returns false when it had already ended.</summary>
    public bool Cancel()
    {
        if (IsFinished) return false;
        _cancel.Cancel();
        return true;
    }

    internal void Emit(JobEvent e)
    {
        lock (_lock)
        {
            if (e is not JobPreview) _history.Add(e);
            foreach (var watcher in _watchers) watcher.TryWrite(e);
        }
    }

    internal void MarkRunning()
    {
        if (Interlocked.CompareExchange(ref _state, (int)JobState.Running, (int)JobState.Queued) == (int)JobState.Queued)
        {
            StartedAt = DateTime.UtcNow;
            Emit(new JobStarted(Id));
        }
    }

    internal void StepDone(int image, int step, int steps, double timestep, float[] latents, int latentHeight, int latentWidth)
    {
        // Latents (and their size) first, then the count: a poller that sees step k never pairs it with older latents.
        LatestLatentSize = (latentHeight, latentWidth);
        LatestLatents = latents;
        LatestImageIndex = image;
        Interlocked.Increment(ref _stepsDone);
        Emit(new JobStep(Id, image, step, steps, timestep));
    }

    /// <summary>Progress of work done elsewhere (no latents here, so no previews): steps done over all images so far.</summary>
    internal void StepsReported(int image, int stepsDone, int step, int steps, double timestep)
    {
        if (stepsDone <= StepsDone) return;
        Volatile.Write(ref _stepsDone, stepsDone);
        Emit(new JobStep(Id, image, step, steps, timestep));
    }

    internal bool Succeed(JobResult result) => Finish(JobState.Succeeded, new JobFinished(Id, result), () => _completion.TrySetResult(result));

    internal bool Fail(Exception error)
    {
        if (error is OperationCanceledException || _cancel.IsCancellationRequested)
            return Finish(JobState.Cancelled, new JobCancelled(Id), () => _completion.TrySetCanceled());
        string message;
        string? id = null;
        if (error is AsyncDiffusionException and not ModelFolderException) message = error.Message;
        else
        {
            // Not the client's doing and possibly full of machine details: the message carries an id, the log the rest.
            id = ErrorIds.Of(error);
            message = $"Internal error {id}; the server log has the details.";
        }
        return Finish(JobState.Failed, new JobFailed(Id, message), () =>
        {
            Error = error;
            ErrorId = id;
            _completion.TrySetException(error);
        });
    }

    private bool Finish(JobState state, JobEvent last, Action complete)
    {
        int current = Volatile.Read(ref _state);
        while (current is (int)JobState.Queued or (int)JobState.Running)
        {
            int seen = Interlocked.CompareExchange(ref _state, (int)state, current);
            if (seen == current)
            {
                LatestLatents = null;
                complete();
                lock (_lock)
                {
                    _history.Add(last);
                    foreach (var watcher in _watchers)
                    {
                        watcher.TryWrite(last);
                        watcher.TryComplete();
                    }
                    _watchers.Clear();
                }
                return true;
            }
            current = seen;
        }
        return false;
    }
}
