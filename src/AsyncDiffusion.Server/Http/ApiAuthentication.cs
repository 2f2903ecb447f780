using System.Text;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.OpenAI;

namespace AsyncDiffusion.Server.Http;

/// <summary>API keys and Basic credentials, as the options ask for them.</summary>
public static class ApiAuthentication
{
    // Bearer for OpenAI/native routes, Basic for A1111 routes; the page and health checks stay open.
    public static Task Check(HttpContext ctx, Func<Task> next, ServerOptions options)
    {
        if (options.ApiKey is null && options.ApiAuth is null) return next();
        string path = ctx.Request.Path.Value ?? "";
        // Image URLs are unguessable and must open without headers (Home Assistant, LibreChat read them directly).
        if (path is "/" or "/health" or "/ready" or "/api/v1/openapi.json" || path.StartsWith("/v1/images/files/", StringComparison.Ordinal)) return next();
        string header = ctx.Request.Headers.Authorization.ToString();
        bool ok = false;
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            ok = options.ApiKey is not null && FixedEquals(header[7..].Trim(), options.ApiKey);
        else if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim())); }
            catch (FormatException) { decoded = ""; }
            ok = options.ApiAuth is not null ? FixedEquals(decoded, options.ApiAuth)
                : options.ApiKey is not null && decoded.Split(':', 2) is [_, var pass] && FixedEquals(pass, options.ApiKey);
        }
        else if (ctx.Request.Method == "GET" && ctx.Request.Query["access_token"].ToString() is { Length: > 0 } token)
            ok = options.ApiKey is not null && FixedEquals(token, options.ApiKey); // EventSource cannot send headers
        if (ok) return next();

        ctx.Response.StatusCode = 401;
        if (path.StartsWith("/sdapi", StringComparison.Ordinal))
        {
            ctx.Response.Headers.WWWAuthenticate = "Basic";
            return ctx.Response.WriteAsJsonAsync(new { error = "unauthorized", detail = "Incorrect credentials.", body = "", errors = "Incorrect credentials." });
        }
        ctx.Response.Headers.WWWAuthenticate = "Bearer";
        return ctx.Response.WriteAsJsonAsync(OpenAIEndpoints.Error("Missing or invalid API key; send 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key"));
    }

    private static bool FixedEquals(string a, string b) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}
