using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using StackExchange.Redis;

namespace AsyncDiffusion.Cluster.Hosting;

/// <summary>
/// Where a cluster keeps its membership and jobs: <c>redis://host:port</c> (several machines;
/// jobs survive any node) or <c>localhost</c> (one machine, development: the node on silo port
/// 11111 is the primary and jobs live in its memory).
/// </summary>
public sealed record ClusterConnection(string? RedisHost, int RedisPort)
{
    public const int PrimarySiloPort = 11111;

    public bool IsRedis => RedisHost is not null;
    public string RedisEndpoint => $"{RedisHost}:{RedisPort}";

    public static ClusterConnection Parse(string text)
    {
        text = text.Trim();
        if (text.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return new ClusterConnection(null, 0);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != "redis" || string.IsNullOrEmpty(uri.Host))
            throw new AsyncDiffusionException($"--cluster '{text}' is not understood; expected redis://HOST:PORT (e.g. redis://10.0.0.5:6379) or localhost.");
        return new ClusterConnection(uri.Host, uri.IsDefaultPort || uri.Port < 0 ? 6379 : uri.Port);
    }

    public ConfigurationOptions RedisOptions(bool failFast)
    {
        var options = ConfigurationOptions.Parse(RedisEndpoint);
        options.AbortOnConnectFail = failFast;
        options.ConnectTimeout = 3000;
        options.ConnectRetry = failFast ? 1 : 3;
        return options;
    }

    /// <summary>Connects once at start-up, so an unreachable Redis is one clear error rather than a silo that never joins.</summary>
    public IConnectionMultiplexer ConnectRedis()
    {
        try
        {
            var redis = ConnectionMultiplexer.Connect(RedisOptions(failFast: true));
            redis.GetDatabase().Ping();
            return redis;
        }
        catch (Exception e) when (e is RedisException or SocketException or TimeoutException)
        {
            throw new AsyncDiffusionException($"cannot reach Redis at {RedisEndpoint} (--cluster redis://{RedisEndpoint}): {FirstLine(e.Message)}. Start Redis there or fix the address.");
        }
    }

    /// <summary>The address other nodes reach this one at: loopback when Redis is local (one machine), else this machine's first IPv4 address.</summary>
    public IPAddress AdvertisedAddress()
    {
        if (!IsRedis || RedisHost is "localhost" || (IPAddress.TryParse(RedisHost, out var ip) && IPAddress.IsLoopback(ip))) return IPAddress.Loopback;
        var address = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        return address ?? IPAddress.Loopback;
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim().TrimEnd('.');
}
