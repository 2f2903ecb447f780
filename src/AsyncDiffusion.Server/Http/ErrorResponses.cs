using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Monitoring;
using AsyncDiffusion.Server.OpenAI;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// Turns exceptions into responses by kind, in the shape of the API called: bad input 400,
/// limits 413/429, failures 500 with a short error id that is also in the request's log line.
/// No stack trace or server file path ever reaches a client. A failure after the response has
/// started (a stream) aborts the connection, so the client sees a broken response rather than a
/// complete-looking one.
/// </summary>
public static class ErrorResponses
{
    public static async Task Handle(HttpContext ctx, Func<Task> next, ServerMetrics metrics)
    {
        try
        {
            await next();
        }
        catch (Exception e) when (ctx.Response.HasStarted)
        {
            if (e is OperationCanceledException && ctx.RequestAborted.IsCancellationRequested) return; // the client left
            RequestLog.Failed(ctx, e, ErrorIds.Of(e));
            metrics.Error();
            ctx.Abort();
        }
        catch (Exception e)
        {
            if (e is OperationCanceledException && ctx.RequestAborted.IsCancellationRequested) return; // the client left
            int status;
            string kind, message, field = "";
            switch (e)
            {
                case QueueFullException full:
                    status = 429;
                    kind = "rate_limit_exceeded";
                    message = full.Message;
                    ctx.Response.Headers.RetryAfter = Math.Ceiling(full.RetryAfter.TotalSeconds).ToString("0");
                    metrics.Rejected();
                    break;
                case ServiceUnavailableException unavailable:
                    string unavailableId = ErrorIds.Of(unavailable);
                    (status, kind, message) = (503, "service_unavailable", $"{unavailable.Message} (error {unavailableId})");
                    ctx.Response.Headers.RetryAfter = Math.Ceiling(unavailable.RetryAfter.TotalSeconds).ToString("0");
                    RequestLog.Failed(ctx, unavailable, unavailableId);
                    break;
                case BadRequestException bad:
                    (status, kind, message, field) = (bad.Status, bad.Status == 404 ? "not_found" : "invalid_request_error", bad.Message, bad.Field);
                    break;
                case BadHttpRequestException http:
                    (status, kind, message) = (http.StatusCode, "invalid_request_error", http.StatusCode == 413 ? "The request body is too large." : http.Message);
                    break;
                case ResourceLimitException limit:
                    (status, kind, message) = (413, "invalid_request_error", limit.Message);
                    break;
                case GenerationFailedException failed:
                    // A valid request that failed while running: its message is safe to show; the id finds it in the log.
                    string failedId = ErrorIds.Of(failed);
                    RequestLog.Failed(ctx, failed, failedId);
                    (status, kind, message) = (500, "server_error", $"{failed.Message} (error {failedId})");
                    break;
                case AsyncDiffusionException ad when ad is not ModelFolderException:
                    (status, kind, message) = (400, "invalid_request_error", ad.Message);
                    break;
                default:
                    // Internal failures (and model-folder errors, whose messages name server files) stay in the log.
                    string id = ErrorIds.Of(e);
                    RequestLog.Failed(ctx, e, id);
                    (status, kind, message) = (500, "server_error", $"Internal error {id}; the server log has the details.");
                    break;
            }
            if (status >= 400 && status != 429) metrics.Error();
            ctx.Response.StatusCode = status;
            string path = ctx.Request.Path.Value ?? "";
            object body = path.StartsWith("/sdapi", StringComparison.Ordinal)
                ? new { error = kind, detail = message, body = "", errors = message }
                : path.StartsWith("/v1", StringComparison.Ordinal)
                    ? OpenAIEndpoints.Error(message, kind, string.IsNullOrEmpty(field) ? null : field, status == 429 ? "rate_limit_exceeded" : (e as BadRequestException)?.Code)
                    : new { error = kind, detail = message };
            await new CompleteJson(body, status).ExecuteAsync(ctx);
        }
    }
}
