using AsyncDiffusion.Cluster.Contracts;

namespace AsyncDiffusion.Cluster.Grains;

/// <summary>
/// The cluster's one queue (key 0): jobs waiting, jobs leased to nodes (with their epochs), the
/// nodes themselves. Nodes pull work when they have free slots; leases of nodes that membership
/// declares dead (or that stop renewing) go back to the front of the queue under a new epoch.
/// </summary>
public interface IDispatcherGrain : IGrainWithIntegerKey
{
    /// <summary>Queues a job unless no live node has its model or the cluster's queue is full.</summary>
    Task<SubmitReply> Enqueue(string jobId, string model);

    /// <summary>Takes a queued job out (cancelled).</summary>
    Task Remove(string jobId);

    /// <summary>
    /// A node's heartbeat and request for work: it holds <paramref name="held"/> (renewed; its other
    /// leases are released) and can start <paramref name="free"/> more.
    /// </summary>
    Task<PullReply> Pull(NodeReport node, string[] held, int free);

    /// <summary>The lease <paramref name="epoch"/> of the job is over (committed or refused).</summary>
    Task Finished(string jobId, long epoch);

    Task<ClusterView> View();
}
