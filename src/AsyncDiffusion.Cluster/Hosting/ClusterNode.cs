using AsyncDiffusion.Cluster.Node;
using AsyncDiffusion.Server;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Cluster.Hosting;

/// <summary><c>asyncdiffusion serve --cluster</c>: the server plus a silo; exits 2 when it cannot join (Redis unreachable, name taken).</summary>
public static class ClusterNode
{
    public const int BadInput = 2;
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(90);

    public static int Run(ServerOptions options, ClusterSettings settings, TextWriter error)
    {
        var connection = ClusterConnection.Parse(settings.Connection);
        if (string.IsNullOrWhiteSpace(settings.NodeName) || settings.NodeName.Length > 100)
            throw new AsyncDiffusionException($"--node-name '{settings.NodeName}' is not usable; expected 1 to 100 characters.");
        if (settings.SiloPort is < 1 or > 65535 || settings.GatewayPort is < 1 or > 65535 || settings.SiloPort == settings.GatewayPort)
            throw new AsyncDiffusionException($"--silo-port {settings.SiloPort} and --gateway-port {settings.GatewayPort} must be two different ports from 1 to 65535.");
        using var redis = connection.IsRedis ? connection.ConnectRedis() : null;
        var extension = new ClusterServerExtension(connection, settings, redis, options.Urls.Split(';')[0]);
        var app = ServerApp.Build(options, extension);
        try
        {
            app.StartAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or Orleans.Runtime.OrleansException)
        {
            throw new AsyncDiffusionException($"node '{settings.NodeName}' could not start: {e.Message.Split('\n')[0]} (are --silo-port {settings.SiloPort}, --gateway-port {settings.GatewayPort} and --urls free?)");
        }
        var health = app.Services.GetRequiredService<NodeHealth>();
        var registration = health.Registration.WaitAsync(JoinTimeout).ContinueWith(t => t).GetAwaiter().GetResult();
        string? problem = !registration.IsCompletedSuccessfully
            ? $"node '{settings.NodeName}' could not join the cluster within {JoinTimeout.TotalSeconds:F0} s ({health.Unready()})"
            : registration.Result is { } refused ? $"node '{settings.NodeName}' refused: {refused}; give every node a distinct --node-name" : null;
        if (problem is not null)
        {
            error.WriteLine($"error: {problem}.");
            app.StopAsync().GetAwaiter().GetResult();
            return BadInput;
        }
        app.Logger.LogInformation("Node {Node} joined the cluster ({Connection})", settings.NodeName, settings.Connection);
        app.WaitForShutdownAsync().GetAwaiter().GetResult();
        return 0;
    }
}
