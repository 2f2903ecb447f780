using AsyncDiffusion.Cluster.Contracts;

namespace AsyncDiffusion.Cluster.Node;

/// <summary>What runs a node's leased jobs: its engine (or a test double that counts executions).</summary>
public interface IJobExecutor
{
    /// <summary>Models this node can run.</summary>
    IReadOnlyList<string> Models { get; }

    /// <summary>Jobs it runs at once: how many leases the node holds at most.</summary>
    int Slots { get; }

    /// <summary>Its admission limit: what it adds to the cluster's queue capacity.</summary>
    int MaxJobs { get; }

    /// <summary>
    /// Runs one request. <paramref name="progress"/> gets steps done and the total; cancellation stops it.
    /// Bad input throws <see cref="AsyncDiffusionException"/> (the job fails with that message).
    /// </summary>
    Task<ClusterJobResult> Execute(string jobId, ClusterRequest request, Action<int, int> progress, CancellationToken cancellation);
}
