using System.Security.Cryptography;
using System.Text;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// Who is calling, for A1111's calls that act on "the current job" (/progress, /interrupt,
/// /skip): the client's network address plus a digest of the credentials it sent. Two clients
/// behind one proxy and without credentials of their own count as one caller.
/// </summary>
public static class CallerIdentity
{
    public static string Of(HttpContext ctx)
    {
        string address = ctx.Connection.RemoteIpAddress?.MapToIPv6().ToString() ?? "";
        string credentials = ctx.Request.Headers.Authorization.ToString();
        return credentials.Length == 0 ? address : $"{address}|{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(credentials)), 0, 8)}";
    }
}
