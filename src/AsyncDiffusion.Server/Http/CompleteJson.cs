using System.Text.Json;
using Microsoft.Extensions.Options;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// A JSON response serialised in full before its first byte is sent, with its length: a client
/// gets the whole body or an error status, never a 200 cut off mid-body.
/// </summary>
public sealed class CompleteJson(object? value, int status = StatusCodes.Status200OK) : IResult
{
    public Task ExecuteAsync(HttpContext ctx)
    {
        // The same settings as ASP.NET's own JSON results (web naming, relaxed escaping).
        var options = ctx.RequestServices.GetService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>()?.Value.SerializerOptions
            ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(value, options);
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        ctx.Response.ContentLength = body.Length;
        return ctx.Response.Body.WriteAsync(body).AsTask();
    }
}
