using System.Collections.Concurrent;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// The engine's jobs: admission (at most MaxJobs queued + running), lookup by id for a while
/// after they end (bounded in number and in the bytes their results hold), and the one place a
/// job ends, which frees its slot, lets go of its inputs and counts the outcome.
/// </summary>
internal sealed class JobRegistry(int maxJobs, int streams, int maxBatch, long retainedResultBytes)
{
    private readonly ConcurrentDictionary<string, Job> _jobs = new();
    private readonly object _evicting = new();
    private long _retainedBytes;
    private int _admitted;
    private long _submitted, _succeeded, _failed, _cancelled, _rejected;
    private double _averageJobMs = 1000;

    /// <summary>Raised once when a job ends (succeeded, failed or cancelled), on the thread that ended it.</summary>
    public event Action<Job>? JobEnded;

    public long Submitted => Interlocked.Read(ref _submitted);
    public long Succeeded => Interlocked.Read(ref _succeeded);
    public long Failed => Interlocked.Read(ref _failed);
    public long Cancelled => Interlocked.Read(ref _cancelled);
    public long Rejected => Interlocked.Read(ref _rejected);
    public int Queued => _jobs.Values.Count(j => j.State == JobState.Queued);
    public int Running => _jobs.Values.Count(j => j.State == JobState.Running);
    public IEnumerable<Job> All => _jobs.Values;

    /// <summary>Bytes held by the results of finished jobs still kept for lookup.</summary>
    public long RetainedBytes => Interlocked.Read(ref _retainedBytes);

    /// <summary>Admits a planned request as a new job, or throws <see cref="QueueFullException"/> at once.</summary>
    public Job Admit(GenerationPlan plan)
    {
        int admitted = Interlocked.Increment(ref _admitted);
        if (admitted > maxJobs)
        {
            Interlocked.Decrement(ref _admitted);
            Interlocked.Increment(ref _rejected);
            double seconds = Math.Clamp(Volatile.Read(ref _averageJobMs) / 1000.0 * maxJobs / Math.Max(1, streams * maxBatch), 1, 600);
            throw new QueueFullException(maxJobs, TimeSpan.FromSeconds(seconds));
        }
        Interlocked.Increment(ref _submitted);
        var job = new Job(Guid.NewGuid().ToString("N"), plan);
        _jobs[job.Id] = job;
        job.Emit(new JobQueued(job.Id, admitted));
        return job;
    }

    public Job? Find(string id) => _jobs.TryGetValue(id, out var job) ? job : null;

    public void Succeed(Job job, JobResult result) => End(job, () => job.Succeed(result));

    public void Fail(Job job, Exception error) => End(job, () => job.Fail(error));

    private void End(Job job, Func<bool> transition)
    {
        if (!transition()) return;
        job.Plan.ReleaseInputs(); // whatever way it ended (sync mode, failed or cancelled while queued), a finished job keeps no upload
        Interlocked.Decrement(ref _admitted);
        switch (job.State)
        {
            case JobState.Succeeded:
                Interlocked.Increment(ref _succeeded);
                double ms = (DateTime.UtcNow - job.SubmittedAt).TotalMilliseconds;
                Volatile.Write(ref _averageJobMs, 0.8 * Volatile.Read(ref _averageJobMs) + 0.2 * ms);
                break;
            case JobState.Cancelled: Interlocked.Increment(ref _cancelled); break;
            default: Interlocked.Increment(ref _failed); break;
        }
        Interlocked.Add(ref _retainedBytes, ResultBytes(job));
        try { JobEnded?.Invoke(job); }
        catch (Exception) { /* observers must not break the engine */ }
        Evict();
    }

    // Finished jobs stay findable for a while, oldest evicted first: at most 4 × MaxJobs + 256 of them, holding at most retainedResultBytes.
    private void Evict()
    {
        int maxCount = 4 * maxJobs + 256;
        bool overCount = _jobs.Count > maxCount;
        if (!overCount && RetainedBytes <= retainedResultBytes) return;
        lock (_evicting)
            foreach (var old in _jobs.Values.Where(j => j.IsFinished).OrderBy(j => j.SubmittedAt).ToList())
            {
                if ((!overCount || _jobs.Count <= maxCount / 2) && RetainedBytes <= retainedResultBytes) break;
                if (_jobs.TryRemove(old.Id, out _)) Interlocked.Add(ref _retainedBytes, -ResultBytes(old));
            }
    }

    private static long ResultBytes(Job job) => job.Completion.IsCompletedSuccessfully
        ? job.Completion.Result.Files.Sum(f => (long)f.Length) + job.Completion.Result.Generation.Images.Sum(i => (long)i.Image.Pixels.Length)
        : 0;
}
