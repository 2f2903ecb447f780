using AsyncDiffusion.Engine;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Monitoring;

namespace AsyncDiffusion.Server;

/// <summary>Where the A1111 and OpenAI endpoints send a request: the local engine, or (in a cluster) a job that may run on another node.</summary>
public delegate Task<Job> JobSubmitter(GenerationRequest request, HttpContext context);

/// <summary>The server's parts an extension may use.</summary>
public sealed record ServerParts(ServerOptions Options, ModelCatalog Catalog, ServerMetrics Metrics);

/// <summary>
/// What another component (the cluster node) adds to the server: services and hosted services,
/// routes that take precedence over the built-in ones with the same path, and where the A1111
/// and OpenAI endpoints submit jobs. Without one the server runs on its own engine.
/// </summary>
public abstract class ServerExtension
{
    public virtual void ConfigureServices(WebApplicationBuilder builder) { }

    /// <summary>Maps routes; <see cref="ServerApp"/> gives them precedence over its own routes with the same pattern.</summary>
    public virtual void MapRoutes(IEndpointRouteBuilder routes, ServerParts parts) { }

    /// <summary>Where jobs go; null keeps the local engine.</summary>
    public virtual JobSubmitter? CreateSubmitter(IServiceProvider services, ServerParts parts) => null;
}
