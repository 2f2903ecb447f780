using System.Text;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.OpenAI;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// Credentials on the API routes. Every API route accepts every configured credential:
/// <c>--api-key KEY</c> as <c>Bearer KEY</c> or as the password of HTTP Basic (any user name);
/// <c>--api-auth user:pass</c> as HTTP Basic or as <c>Bearer user:pass</c>; GET requests (event
/// streams, which browsers open without headers) may pass either as <c>?access_token=</c>.
/// The page, health checks and handed-out image URLs stay open.
/// </summary>
public static class ApiAuthentication
{
    public static Task Check(HttpContext ctx, Func<Task> next, ServerOptions options)
    {
        if (options.ApiKey is null && options.ApiAuth is null) return next();
        string path = ctx.Request.Path.Value ?? "";
        // Image URLs are unguessable and must open without headers (Home Assistant, LibreChat read them directly).
        if (path is "/" or "/health" or "/ready" or "/api/v1/openapi.json" || path.StartsWith("/v1/images/files/", StringComparison.Ordinal)) return next();
        if (Authenticated(ctx.Request, options)) return next();

        ctx.Response.StatusCode = 401;
        if (path.StartsWith("/sdapi", StringComparison.Ordinal))
        {
            ctx.Response.Headers.WWWAuthenticate = "Basic";
            return ctx.Response.WriteAsJsonAsync(new { error = "unauthorized", detail = "Incorrect credentials.", body = "", errors = "Incorrect credentials." });
        }
        ctx.Response.Headers.WWWAuthenticate = "Bearer";
        return ctx.Response.WriteAsJsonAsync(OpenAIEndpoints.Error("Missing or invalid API key; send 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key"));
    }

    public static bool Authenticated(HttpRequest request, ServerOptions options)
    {
        string header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return Matches(header[7..].Trim(), basic: false, options);
        if (header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                return Matches(Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim())), basic: true, options);
            }
            catch (FormatException)
            {
                return false;
            }
        }
        return HttpMethods.IsGet(request.Method) && request.Query["access_token"].ToString() is { Length: > 0 } token && Matches(token, basic: false, options);
    }

    private static bool Matches(string credential, bool basic, ServerOptions options)
    {
        bool ok = false;
        // Empty configured values never match (the options refuse them too): "Basic :" must not open an empty key.
        if (options.ApiKey is { Length: > 0 } key)
            ok |= basic ? credential.Split(':', 2) is [_, var pass] && FixedEquals(pass, key) : FixedEquals(credential, key);
        if (options.ApiAuth is { Length: > 0 } auth)
            ok |= FixedEquals(credential, auth);
        return ok;
    }

    private static bool FixedEquals(string a, string b) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}
