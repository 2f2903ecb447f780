using Microsoft.Extensions.DependencyInjection;
using AsyncDiffusion.Cluster.Grains;
using AsyncDiffusion.Cluster.Hosting;
using AsyncDiffusion.Cluster.Node;
using AsyncDiffusion.Cluster.Tests.Doubles;
using Orleans.Configuration;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace AsyncDiffusion.Cluster.Tests;

/// <summary>Three AsyncDiffusion nodes as Orleans silos in this process, on counting executors and a store that survives any silo.</summary>
public sealed class TestCluster : IAsyncDisposable
{
    public ExecutionLog Executions { get; } = new();
    public SharedGrainStore Store { get; } = new();
    public InProcessTestCluster Orleans { get; }

    private TestCluster(short silos)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        builder.ConfigureSilo((options, silo) =>
        {
            silo.Services.AddGrainStorage(ClusterStorage.Name, (sp, _) => Store.For(sp.GetRequiredService<DeepCopier>()));
            silo.Services.AddSingleton<IJobExecutor>(new CountingExecutor(options.SiloName, Executions));
            silo.AddAsyncDiffusionNode(new NodeIdentity(options.SiloName, null), new NodeHealth(), d => d.CheckPeriod = TimeSpan.FromMilliseconds(200));
            // Find a killed silo in about a second.
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromMilliseconds(500);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
            });
        });
        Orleans = builder.Build();
    }

    public static async Task<TestCluster> Start(short silos = 3)
    {
        var cluster = new TestCluster(silos);
        await cluster.Orleans.DeployAsync();
        // Every node has pulled at least once: the cluster knows its model and capacity.
        await cluster.WaitFor(async () => (await cluster.Jobs(0).View()).Nodes.Count(n => n.Status == "up") == silos, TimeSpan.FromSeconds(30), "all nodes up");
        return cluster;
    }

    public InProcessSiloHandle Silo(int index) => Orleans.Silos[index];

    public string NodeName(int index) => Orleans.Silos[index].Name;

    /// <summary>The jobs API as the HTTP endpoints of node <paramref name="index"/> use it.</summary>
    public ClusterJobs Jobs(int index) => Orleans.Silos[index].ServiceProvider.GetRequiredService<ClusterJobs>();

    public async Task WaitFor(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds:F0} s waiting for: {what}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await Orleans.StopAllSilosAsync(); }
        catch (Exception) { /* a killed silo may refuse a second stop */ }
        await Orleans.DisposeAsync();
    }
}
