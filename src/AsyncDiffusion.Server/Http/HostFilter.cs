using System.Net;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// Answers only Host headers that name where the server listens (or <c>--allowed-hosts</c>):
/// a web page whose own name has been pointed at this machine (DNS rebinding) gets a 400
/// instead of the APIs. Loopback listening accepts localhost and loopback addresses; one
/// address accepts that address; all interfaces accept any address, localhost and the
/// machine's name.
/// </summary>
public sealed class HostFilter(ListenAddresses listen, IReadOnlyList<string> allowedHosts)
{
    private readonly string _machineName = Dns.GetHostName();

    public Task Check(HttpContext ctx, Func<Task> next)
    {
        string host = ctx.Request.Host.HasValue ? ctx.Request.Host.Host : "";
        if (host.Length == 0 || Allows(host)) return next(); // HTTP/1.0 without Host: not a browser
        string shown = host.Length > 100 ? host[..100] + "…" : host;
        throw new BadRequestException("Host",
            $"Host '{shown}' is not a name this server answers to; it listens on {string.Join(", ", listen.All.Select(a => a.Url))}. Start it with --allowed-hosts {shown} to allow that name.");
    }

    public bool Allows(string host)
    {
        host = host.Trim('[', ']').TrimEnd('.');
        foreach (var pattern in allowedHosts)
        {
            if (pattern == "*" || host.Equals(pattern, StringComparison.OrdinalIgnoreCase)) return true;
            if (pattern.StartsWith("*.", StringComparison.Ordinal) && host.EndsWith(pattern[1..], StringComparison.OrdinalIgnoreCase)) return true;
        }
        bool anyInterface = listen.All.Any(a => a.Scope == ListenScope.AllInterfaces);
        bool loopback = listen.All.Any(a => a.Scope == ListenScope.Loopback);
        if (IPAddress.TryParse(host, out var ip))
            return anyInterface || (loopback && IPAddress.IsLoopback(ip)) || listen.All.Any(a => a.Address is { } bound && bound.Equals(ip));
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return loopback || anyInterface;
        return anyInterface && host.Equals(_machineName, StringComparison.OrdinalIgnoreCase);
    }
}
