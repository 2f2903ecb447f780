using System.Diagnostics;

namespace AsyncDiffusion.Server.Monitoring;

/// <summary>
/// One log line per request: method, path (never the query string, which can carry
/// access_token), status and milliseconds, plus the error id and the exception for failures.
/// </summary>
public static class RequestLog
{
    private const string FailureKey = "asyncdiffusion.failure";
    private const string LoggedKey = "asyncdiffusion.logged";

    /// <summary>Records a failure for this request's line (the error handler calls it).</summary>
    public static void Failed(HttpContext ctx, Exception error, string id) => ctx.Items[FailureKey] = (error, id);

    /// <summary>Marks an exception as already written to the log (a failed job), so request lines carry only its id.</summary>
    public static void MarkLogged(Exception error) => error.Data[LoggedKey] = true;

    public static async Task Write(HttpContext ctx, Func<Task> next, ILogger log)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await next();
        }
        finally
        {
            string method = ctx.Request.Method, path = ctx.Request.Path.Value ?? "";
            int status = ctx.Response.StatusCode;
            double ms = clock.Elapsed.TotalMilliseconds;
            if (ctx.Items[FailureKey] is (Exception error, string id))
            {
                if (error.Data[LoggedKey] is true) log.LogError("{Method} {Path} → {Status} in {Ms:F0} ms, error {Id}", method, path, status, ms, id);
                else log.LogError(error, "{Method} {Path} → {Status} in {Ms:F0} ms, error {Id}", method, path, status, ms, id);
            }
            else if (ctx.RequestAborted.IsCancellationRequested)
                log.LogInformation("{Method} {Path} → client left after {Ms:F0} ms", method, path, ms);
            else
                log.LogInformation("{Method} {Path} → {Status} in {Ms:F0} ms", method, path, status, ms);
        }
    }
}
