using AsyncDiffusion.Cluster.Grains;
using AsyncDiffusion.Cluster.Node;
using Orleans.Configuration;

namespace AsyncDiffusion.Cluster.Hosting;

/// <summary>What makes a silo an AsyncDiffusion node. Clustering, storage and the executor are the host's choice (Redis and the engine, or test doubles).</summary>
public static class ClusterSiloSetup
{
    public static ISiloBuilder AddAsyncDiffusionNode(this ISiloBuilder silo, NodeIdentity identity, NodeHealth health, Action<DispatchOptions>? dispatch = null)
    {
        silo.Configure<SiloOptions>(o => o.SiloName = identity.Name);
        silo.Configure<DispatchOptions>(o => dispatch?.Invoke(o));
        silo.Services.AddSingleton(identity);
        silo.Services.AddSingleton(health);
        silo.Services.AddSingleton<ClusterJobs>();
        silo.Services.AddHostedService<ClusterWorker>();
        return silo;
    }
}
