using System.Net;
using System.Text.RegularExpressions;

namespace AsyncDiffusion.Server.Configuration;

/// <summary>How far a listening address reaches.</summary>
public enum ListenScope
{
    /// <summary>127.0.0.1, [::1] or localhost: this machine only.</summary>
    Loopback,
    /// <summary>One network address of this machine.</summary>
    Address,
    /// <summary>0.0.0.0, [::], * or +: every interface.</summary>
    AllInterfaces,
}

/// <summary>One URL of <c>--urls</c>, split into its parts.</summary>
public sealed record ListenAddress(string Url, string Scheme, string Host, int? Port, ListenScope Scope)
{
    /// <summary>The host as an address, or null for localhost and the all-interfaces forms * and +.</summary>
    public IPAddress? Address => IPAddress.TryParse(Host.Trim('[', ']'), out var ip) ? ip : null;
}

/// <summary>
/// Where the server listens, read from <c>--urls</c> (URLs separated by ';'). Host names other
/// than localhost are refused: Kestrel would listen on every interface for them, which is not
/// what someone who wrote a name meant.
/// </summary>
public sealed partial class ListenAddresses
{
    private ListenAddresses(IReadOnlyList<ListenAddress> all) => All = all;

    public IReadOnlyList<ListenAddress> All { get; }
    public bool LoopbackOnly => All.All(a => a.Scope == ListenScope.Loopback);

    public static ListenAddresses Parse(string urls)
    {
        var all = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseOne).ToArray();
        if (all.Length == 0) throw new AsyncDiffusionException("--urls is empty; expected a URL such as http://127.0.0.1:7860.");
        return new ListenAddresses(all);
    }

    public static ListenAddress ParseOne(string url)
    {
        var m = UrlPattern().Match(url);
        if (!m.Success)
            throw new AsyncDiffusionException($"--urls '{url}' is not a listening URL; expected scheme://address:port such as http://127.0.0.1:7860 or http://0.0.0.0:7860.");
        string host = m.Groups["host"].Value;
        int? port = m.Groups["port"].Success ? int.Parse(m.Groups["port"].Value) : null;
        if (port > 65535) throw new AsyncDiffusionException($"--urls '{url}' has port {port}; expected 0 to 65535.");
        ListenScope scope;
        if (host is "*" or "+") scope = ListenScope.AllInterfaces;
        else if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) scope = ListenScope.Loopback;
        else if (IPAddress.TryParse(host.Trim('[', ']'), out var ip))
            scope = IPAddress.IsLoopback(ip) ? ListenScope.Loopback
                : ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) ? ListenScope.AllInterfaces
                : ListenScope.Address;
        else
            throw new AsyncDiffusionException(
                $"--urls '{url}' names the host '{host}', and for a host name the server would listen on every interface. Give an address instead: 127.0.0.1 (this machine), an address of one interface, or 0.0.0.0 (all interfaces).");
        return new ListenAddress(url, m.Groups["scheme"].Value.ToLowerInvariant(), host, port, scope);
    }

    [GeneratedRegex(@"^(?<scheme>https?)://(?<host>\[[0-9A-Fa-f:.%\w]*\]|[^:/\[\]\s]+)(?::(?<port>\d{1,5}))?/?$", RegexOptions.IgnoreCase)]
    private static partial Regex UrlPattern();
}
