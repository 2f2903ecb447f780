using AsyncDiffusion.Cluster.Grains;
using AsyncDiffusion.Cluster.Http;
using AsyncDiffusion.Cluster.Node;
using AsyncDiffusion.Server;
using Orleans.Configuration;
using StackExchange.Redis;

namespace AsyncDiffusion.Cluster.Hosting;

/// <summary>How <c>serve --cluster</c> was told to join.</summary>
public sealed record ClusterSettings(string Connection, string NodeName, int SiloPort = ClusterConnection.PrimarySiloPort, int GatewayPort = 30000);

/// <summary>Turns the HTTP server into a cluster node: an Orleans silo in the same process, the puller on its engine, and the cluster's routes.</summary>
public sealed class ClusterServerExtension(ClusterConnection connection, ClusterSettings settings, IConnectionMultiplexer? redis, string? url) : ServerExtension
{
    private ServerParts? _parts;

    public NodeIdentity Identity { get; } = new(settings.NodeName, url);

    public override void ConfigureServices(WebApplicationBuilder builder)
    {
        var probe = redis is null ? null : new RedisProbe(redis);
        if (probe is not null) builder.Services.AddSingleton(probe); // disposed with the host
        var health = new NodeHealth(probe is null ? null : () => probe.Reachable);
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = "asyncdiffusion";
                o.ServiceId = "asyncdiffusion";
            });
            // Detect a lost node in seconds (defaults take longer) without suspecting nodes that are merely busy.
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(2);
                o.NumMissedProbesLimit = 3;
            });
            if (connection.IsRedis)
            {
                silo.ConfigureEndpoints(connection.AdvertisedAddress(), settings.SiloPort, settings.GatewayPort, listenOnAnyHostAddress: true);
                silo.UseRedisClustering(o => o.ConfigurationOptions = connection.RedisOptions(failFast: false));
                silo.AddRedisGrainStorage(ClusterStorage.Name, o => o.ConfigurationOptions = connection.RedisOptions(failFast: false));
            }
            else
            {
                var primary = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, ClusterConnection.PrimarySiloPort);
                silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, settings.SiloPort == ClusterConnection.PrimarySiloPort ? null : primary);
                silo.AddMemoryGrainStorage(ClusterStorage.Name);
            }
            silo.AddAsyncDiffusionNode(Identity, health);
            silo.Services.AddSingleton<IJobExecutor>(_ => new EngineExecutor((_parts ?? throw new InvalidOperationException("server parts not set")).Catalog));
        });
    }

    public override JobSubmitter CreateSubmitter(IServiceProvider services, ServerParts parts)
    {
        _parts = parts;
        var submitter = new RemoteJobSubmitter(services.GetRequiredService<ClusterJobs>(), parts.Catalog, services.GetRequiredService<ILogger<RemoteJobSubmitter>>());
        return submitter.Submit;
    }

    public override void MapRoutes(IEndpointRouteBuilder routes, ServerParts parts) =>
        ClusterEndpoints.Map(routes, parts, routes.ServiceProvider.GetRequiredService<ClusterJobs>(), routes.ServiceProvider.GetRequiredService<NodeHealth>(), Identity);
}
