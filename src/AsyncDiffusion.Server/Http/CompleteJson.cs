using System.Text.Json;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// A JSON response serialised in full before its first byte is sent, with its length: a client
/// gets the whole body or an error status, never a 200 cut off mid-body.
/// </summary>
public sealed class CompleteJson(object? value, int status = StatusCodes.Status200OK) : IResult
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public Task ExecuteAsync(HttpContext ctx)
    {
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(value, Options);
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        ctx.Response.ContentLength = body.Length;
        return ctx.Response.Body.WriteAsync(body).AsTask();
    }
}
