using System.Net;
using AsyncDiffusion.Server.Configuration;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace AsyncDiffusion.Server.Storage;

/// <summary>
/// The server's own address for the absolute URLs it hands out: <c>--public-url</c>, else the
/// address it listens on (the machine's name for all interfaces). Never the Host header, which
/// the client chooses.
/// </summary>
public sealed class PublicAddress(ServerOptions options, IServer server)
{
    private string? _base;

    /// <summary>The absolute URL of <paramref name="path"/> (which starts with '/').</summary>
    public string Url(string path) => Base + path;

    public string Base => _base ??= Resolve();

    private string Resolve()
    {
        if (options.PublicUrl is { } configured) return configured.TrimEnd('/');
        // Kestrel reports the ports it actually bound (port 0 becomes a real one).
        string bound = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? ListenAddresses.Parse(options.Urls).All[0].Url;
        var address = ListenAddresses.ParseOne(bound);
        string host = address.Scope == ListenScope.AllInterfaces ? Dns.GetHostName() : address.Host;
        return $"{address.Scheme}://{host}{(address.Port is int port ? $":{port}" : "")}";
    }
}
