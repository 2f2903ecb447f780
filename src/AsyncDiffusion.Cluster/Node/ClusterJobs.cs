using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Grains;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Cluster.Node;

/// <summary>
/// The cluster's jobs as one node's HTTP endpoints use them: submit (accepted only once written
/// to the store), read, watch, cancel and download, wherever the job runs.
/// </summary>
public sealed class ClusterJobs(IGrainFactory grains)
{
    private static readonly TimeSpan StoreRetry = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a call keeps trying before the client gets a 503: a record that lived on a node that
    /// just died answers again once membership has declared that node dead (seconds).
    /// </summary>
    private static readonly TimeSpan CallPatience = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Submits a request (its seed and subseed as the client gave them: −1 is resolved here, or by <paramref name="shape"/>
    /// when the accepting node planned it). With an idempotency key, a retry returns the first submission's job.
    /// </summary>
    public async Task<ClusterJobSnapshot> Submit(ClusterRequest request, PlannedShape? shape, string? idempotencyKey)
    {
        string fingerprint = request.Fingerprint();
        string id = idempotencyKey is null ? Guid.NewGuid().ToString("N") : IdFor(idempotencyKey);
        long seed = shape?.Seeds[0] ?? (request.Seed == -1 ? Random.Shared.NextInt64(0, 1L << 32) : request.Seed);
        long subseed = shape?.Subseed ?? (request.Subseed == -1 ? Random.Shared.NextInt64(0, 4294967294) : request.Subseed);
        // Retried under the same id: a submission that was written before its reply was lost comes back as Existing.
        var reply = await Call(() => grains.GetGrain<IJobGrain>(id).Submit(request with { Seed = seed, Subseed = subseed }, fingerprint, shape),
            "The cluster's job store cannot be reached now; the job was not accepted.");
        return reply.Outcome switch
        {
            SubmitOutcome.Accepted or SubmitOutcome.Existing => reply.Job!,
            SubmitOutcome.Conflict => throw new BadRequestException("Idempotency-Key", $"Idempotency-Key '{idempotencyKey}': {reply.Detail}.", 409),
            SubmitOutcome.NoModel => throw new BadRequestException("model", $"{reply.Detail}."),
            _ => throw new QueueFullException(reply.Capacity, TimeSpan.FromSeconds(reply.RetryAfterSeconds)),
        };
    }

    /// <summary>Job ids from idempotency keys: the same key names the same job on every node.</summary>
    public static string IdFor(string idempotencyKey) =>
        "k" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(idempotencyKey)))[..31];

    public Task<ClusterJobSnapshot?> Get(string id) => Call(() => Job(id).Get());

    public Task<ClusterJobSnapshot?> Cancel(string id) => Call(() => Job(id).Cancel());

    public Task<byte[]?> Image(string id, int index) => Call(() => Job(id).Image(index));

    public Task<ClusterView> View() => Call(() => grains.GetGrain<IDispatcherGrain>(0).View());

    /// <summary>The job's events from the start, until it ends; survives the job's record moving to another node.</summary>
    public async IAsyncEnumerable<ClusterJobEvent> Watch(string id, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        string? incarnation = null;
        int after = -1, failures = 0;
        while (!cancellation.IsCancellationRequested)
        {
            ClusterJobEvent[] batch;
            try
            {
                batch = await Job(id).Events(incarnation, after, TimeSpan.FromSeconds(10)).WaitAsync(cancellation);
                failures = 0;
            }
            catch (Exception) when (!cancellation.IsCancellationRequested && ++failures < 120)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellation);
                continue;
            }
            foreach (var e in batch)
            {
                // A re-activated record (its node died) starts a new incarnation and replays its story from the record.
                incarnation = e.Incarnation;
                after = e.Index;
                yield return e;
                if (e.Kind == ClusterEventKind.Done) yield break;
            }
        }
    }

    private IJobGrain Job(string id) => grains.GetGrain<IJobGrain>(id);

    private static async Task<T> Call<T>(Func<Task<T>> call, string failure = "The cluster's job store cannot be reached now.")
    {
        var deadline = DateTime.UtcNow + CallPatience;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * attempt)));
            }
            catch (Exception e)
            {
                throw new ServiceUnavailableException(failure, StoreRetry, e);
            }
        }
    }
}
