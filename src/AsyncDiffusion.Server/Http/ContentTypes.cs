using Microsoft.Net.Http.Headers;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// API calls with a body must say what it is: application/json, or multipart/form-data on the
/// upload routes (415 otherwise). Browsers send cross-site "simple" requests (text/plain,
/// form posts, typeless blobs) without asking first; requiring the type keeps other web pages
/// from driving the server.
/// </summary>
public static class ContentTypes
{
    private static readonly HashSet<string> MultipartRoutes = new(StringComparer.Ordinal) { "/v1/images/edits", "/v1/images/variations" };

    public static Task Check(HttpContext ctx, Func<Task> next)
    {
        var request = ctx.Request;
        string path = request.Path.Value ?? "";
        if (!(HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method)) || !IsApi(path)) return next();
        bool multipart = MultipartRoutes.Contains(path);
        string? type = request.ContentType;
        bool bodyless = request.ContentLength is 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count == 0);
        if (string.IsNullOrEmpty(type) && bodyless) return next(); // A1111's /interrupt and /skip are posted without a body
        string media = MediaTypeHeaderValue.TryParse(type, out var parsed) ? parsed.MediaType.Value ?? "" : "";
        bool ok = multipart
            ? media.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            : media.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
        if (ok) return next();
        string expected = multipart ? "multipart/form-data" : "application/json";
        throw new BadRequestException("Content-Type", string.IsNullOrEmpty(type)
            ? $"the request has a body but no Content-Type; expected {expected}"
            : $"Content-Type is '{type}'; expected {expected}", 415);
    }

    public static bool IsApi(string path) =>
        path.StartsWith("/sdapi/", StringComparison.Ordinal) || path.StartsWith("/v1/", StringComparison.Ordinal) || path.StartsWith("/api/", StringComparison.Ordinal);
}
