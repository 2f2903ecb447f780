using AsyncDiffusion.Cluster.Contracts;
using Orleans.Concurrency;

namespace AsyncDiffusion.Cluster.Grains;

/// <summary>
/// One cluster job (key: its id): the durable record of the request, who runs it under which
/// lease epoch, and its result, committed exactly once. Any node reads, watches and cancels
/// through it.
/// </summary>
public interface IJobGrain : IGrainWithStringKey
{
    /// <summary>Writes the job durably, then queues it. A second submission with the same id returns the job as it is.</summary>
    Task<SubmitReply> Submit(ClusterRequest request, string fingerprint, PlannedShape? shape);

    /// <summary>A node starts its lease; null when the lease is stale or the job has ended.</summary>
    Task<ClusterRequest?> Start(long epoch, string node);

    /// <summary>Steps done so far; false tells the node to stop (cancelled, or its lease was taken back).</summary>
    Task<bool> Progress(long epoch, int stepsDone, int stepsTotal);

    /// <summary>Commits the outcome of the lease <paramref name="epoch"/>; refused (false) when that lease is no longer current or the job already ended.</summary>
    Task<bool> Complete(long epoch, ClusterJobResult? result, string? error, bool cancelled);

    /// <summary>The dispatcher took the job back from a lost node: results under older epochs are refused from now on.</summary>
    Task<bool> Reclaim(long epoch);

    Task<ClusterJobSnapshot?> Get();

    Task<ClusterJobSnapshot?> Cancel();

    Task<byte[]?> Image(int index);

    /// <summary>
    /// Events after <paramref name="after"/> of <paramref name="incarnation"/>, waiting up to <paramref name="wait"/> for one;
    /// all of them when the record was re-activated since (a new incarnation). The last one is Done.
    /// </summary>
    [AlwaysInterleave]
    Task<ClusterJobEvent[]> Events(string? incarnation, int after, TimeSpan wait);
}
