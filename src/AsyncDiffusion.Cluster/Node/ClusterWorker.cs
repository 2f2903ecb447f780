using System.Collections.Concurrent;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Grains;
using Orleans.Runtime;

namespace AsyncDiffusion.Cluster.Node;

/// <summary>
/// A node's puller: asks the dispatcher for work whenever it has free slots, runs each lease on
/// the executor, reports progress (which also tells it when to stop), and commits the outcome
/// under the lease's epoch, retrying until the store answers so no finished work is dropped.
/// </summary>
public sealed class ClusterWorker(
    IGrainFactory grains,
    ILocalSiloDetails silo,
    IJobExecutor executor,
    NodeHealth health,
    NodeIdentity identity,
    ILogger<ClusterWorker> log) : BackgroundService
{
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromMilliseconds(200);
    private readonly ConcurrentDictionary<string, long> _held = new();
    private readonly SemaphoreSlim _wake = new(0);
    private long _succeeded, _failed, _images;
    private double _averageJobSeconds = 1;

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        var dispatcher = grains.GetGrain<IDispatcherGrain>(0);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                int free = Math.Max(0, executor.Slots - _held.Count);
                var reply = await dispatcher.Pull(Report(), _held.Keys.ToArray(), free);
                if (reply.NameRefused)
                {
                    health.Refused(reply.Detail ?? "node name refused");
                    return;
                }
                health.PullSucceeded();
                foreach (var lease in reply.Leases)
                {
                    _held[lease.JobId] = lease.Epoch;
                    _ = Task.Run(() => Run(lease, stop), CancellationToken.None);
                }
                if (reply.Leases.Length > 0 && reply.Leases.Length == free) continue; // more may be waiting
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                health.PullFailed(e);
                log.LogWarning("Pulling work failed: {Error}", e.Message);
                await Delay(TimeSpan.FromMilliseconds(500), stop);
                continue;
            }
            await _wake.WaitAsync(IdlePoll, stop).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private async Task Run(JobLease lease, CancellationToken stop)
    {
        var job = grains.GetGrain<IJobGrain>(lease.JobId);
        try
        {
            var request = await Retry(() => job.Start(lease.Epoch, identity.Name), stop, attempts: 5);
            if (request is null)
            {
                await Finish(lease);
                return;
            }
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var progress = new ProgressReporter(job, lease.Epoch, cancel, ProgressEvery);
            ClusterJobResult? result = null;
            string? error = null;
            bool cancelled = false;
            try
            {
                result = await executor.Execute(lease.JobId, request, progress.Report, cancel.Token);
            }
            catch (OperationCanceledException)
            {
                cancelled = true;
            }
            catch (AsyncDiffusionException e) when (e is not ModelFolderException)
            {
                error = e.Message;
            }
            catch (Exception e)
            {
                string id = ErrorIds.Of(e);
                log.LogError(e, "Job {Job} failed here: internal error {Id}", lease.JobId, id);
                error = $"Internal error {id} on node {identity.Name}; its log has the details.";
            }
            if (stop.IsCancellationRequested) return; // shutting down: the lease is taken back and the job runs elsewhere
            if (cancelled)
            {
                // Stopped by the cluster: the job was cancelled or its lease taken back, nothing to commit.
                // Otherwise (the engine gave up on it) the lease is dropped and the dispatcher queues it again.
                if (progress.StoppedByCluster) await Finish(lease);
                return;
            }
            bool committed = await Retry(() => job.Complete(lease.Epoch, result, error, cancelled), stop, attempts: int.MaxValue);
            if (committed)
            {
                if (result is not null)
                {
                    Interlocked.Increment(ref _succeeded);
                    Interlocked.Add(ref _images, result.Files.Length);
                    _averageJobSeconds = 0.8 * _averageJobSeconds + 0.2 * result.RunMs / 1000;
                }
                else if (!cancelled) Interlocked.Increment(ref _failed);
            }
            else log.LogWarning("Result of job {Job} under lease {Epoch} refused: the lease was taken back or the job ended elsewhere", lease.JobId, lease.Epoch);
            await Finish(lease);
        }
        catch (Exception e) when (!stop.IsCancellationRequested)
        {
            // Could not start it: dropping it from the held set makes the dispatcher queue it again.
            log.LogWarning("Job {Job} (lease {Epoch}) given back: {Error}", lease.JobId, lease.Epoch, e.Message);
        }
        finally
        {
            _held.TryRemove(lease.JobId, out _);
            _wake.Release();
        }
    }

    private async Task Finish(JobLease lease)
    {
        try { await grains.GetGrain<IDispatcherGrain>(0).Finished(lease.JobId, lease.Epoch); }
        catch (Exception e) { log.LogDebug("Finished({Job}) not delivered ({Error}); the next pull releases the lease", lease.JobId, e.Message); }
    }

    /// <summary>Calls the store until it answers: grain activations move when a node dies, and Redis may be away for a while.</summary>
    private async Task<T> Retry<T>(Func<Task<T>> call, CancellationToken stop, int attempts)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (attempt < attempts && !stop.IsCancellationRequested)
            {
                log.LogWarning("Cluster call failed (attempt {Attempt}): {Error}", attempt, e.Message);
                await Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 * attempt)), stop);
            }
        }
    }

    private static Task Delay(TimeSpan delay, CancellationToken stop) => Task.Delay(delay, stop).ContinueWith(_ => { }, TaskScheduler.Default);

    private NodeReport Report() => new()
    {
        Name = identity.Name,
        Silo = silo.SiloAddress.ToParsableString(),
        Models = executor.Models.ToArray(),
        Slots = executor.Slots,
        MaxJobs = executor.MaxJobs,
        Running = _held.Count,
        Succeeded = Interlocked.Read(ref _succeeded),
        Failed = Interlocked.Read(ref _failed),
        Images = Interlocked.Read(ref _images),
        Url = identity.Url,
        Healthy = health.StoreReachable,
        AverageJobSeconds = _averageJobSeconds,
    };

    /// <summary>Sends progress at most every so often; a refusal (cancelled, or lease taken back) cancels the run.</summary>
    private sealed class ProgressReporter(IJobGrain job, long epoch, CancellationTokenSource cancel, TimeSpan every)
    {
        private long _lastTicks;
        private int _sending;

        public bool StoppedByCluster { get; private set; }

        public void Report(int done, int total)
        {
            long now = Environment.TickCount64;
            if (now - Interlocked.Read(ref _lastTicks) < every.TotalMilliseconds && done < total) return;
            if (Interlocked.Exchange(ref _sending, 1) == 1) return;
            Interlocked.Exchange(ref _lastTicks, now);
            _ = Send(done, total);
        }

        private async Task Send(int done, int total)
        {
            try
            {
                if (!await job.Progress(epoch, done, total))
                {
                    StoppedByCluster = true;
                    cancel.Cancel();
                }
            }
            catch (Exception)
            {
                // Progress is advisory; the commit decides.
            }
            finally
            {
                Interlocked.Exchange(ref _sending, 0);
            }
        }
    }
}

/// <summary>This node's name in the cluster and the URL it serves HTTP on (shown in /api/v1/cluster).</summary>
public sealed record NodeIdentity(string Name, string? Url);
