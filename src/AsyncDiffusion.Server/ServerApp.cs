using System.Diagnostics;
using System.Reflection;
using System.Text;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Hosting;
using AsyncDiffusion.Server.Jobs;
using AsyncDiffusion.Server.OpenAI;
using AsyncDiffusion.Server.Sdapi;
using Microsoft.AspNetCore.Http.Features;

namespace AsyncDiffusion.Server;

/// <summary>
/// The HTTP server: AUTOMATIC1111's /sdapi/v1, OpenAI's /v1/images, the native /api/v1/jobs,
/// operations endpoints and a web page, on one engine. Endpoints stay thin: they map API shapes
/// to <c>GenerationRequest</c> and back; errors come out in the shape of the API called.
/// </summary>
public static class ServerApp
{
    public static WebApplication Build(ServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBodyBytes);
        builder.Services.Configure<FormOptions>(f => f.MultipartBodyLengthLimit = options.MaxBodyBytes);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        var app = builder.Build();
        var log = app.Logger;

        var catalog = new ModelCatalog(options, log);
        var metrics = new ServerMetrics();
        var store = new ImageStore(options.ImageRetention);
        void Hook(DiffusionEngine e)
        {
            e.JobEnded += metrics.Observe;
            e.JobEnded += job =>
            {
                if (job.ErrorId is { } id) log.LogError(job.Error, "Job {Job} failed: internal error {Id}", job.Id, id);
            };
        }
        Hook(catalog.Engine);
        catalog.EngineChanged += Hook;
        app.Lifetime.ApplicationStopped.Register(catalog.Dispose);

        app.Use(async (ctx, next) =>
        {
            var clock = Stopwatch.StartNew();
            await next();
            log.LogInformation("{Method} {Path} → {Status} in {Ms:F0} ms", ctx.Request.Method, ctx.Request.Path.Value, ctx.Response.StatusCode, clock.Elapsed.TotalMilliseconds);
        });
        app.Use((ctx, next) => Errors(ctx, next, metrics, log));
        app.Use((ctx, next) => Auth(ctx, next, options));

        app.MapGet("/", () => Results.Content(Resource("index.html"), "text/html; charset=utf-8"));
        app.MapGet("/api/v1/openapi.json", () => Results.Content(Resource("openapi.json"), "application/json"));
        app.MapGet("/health", () => Results.Json(new { status = "ok" }));
        app.MapGet("/ready", () => Results.Json(new { status = "ready", model = catalog.Current.Name, synthetic = catalog.Current.Synthetic }));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(catalog.Engine.Stats), "text/plain; version=0.0.4"));

        SdapiEndpoints.Map(app, catalog, options);
        OpenAIEndpoints.Map(app, catalog, options, store);
        JobsEndpoints.Map(app, catalog, options);
        return app;
    }

    private static async Task Errors(HttpContext ctx, Func<Task> next, ServerMetrics metrics, ILogger log)
    {
        try
        {
            await next();
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
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
                    log.LogError(failed, "Generation failed on {Path} (error {Id})", ctx.Request.Path.Value, failedId);
                    (status, kind, message) = (500, "server_error", $"{failed.Message} (error {failedId})");
                    break;
                case AsyncDiffusionException ad when ad is not ModelFolderException:
                    (status, kind, message) = (400, "invalid_request_error", ad.Message);
                    break;
                default:
                    // Internal failures (and model-folder errors, whose messages name server files) stay in the log.
                    string id = ErrorIds.Of(e);
                    log.LogError(e, "Internal error {Id} on {Path}", id, ctx.Request.Path.Value);
                    (status, kind, message) = (500, "server_error", $"Internal error {id}; the server log has the details.");
                    break;
            }
            if (status >= 400 && status != 429) metrics.Error();
            ctx.Response.StatusCode = status;
            string path = ctx.Request.Path.Value ?? "";
            object body = path.StartsWith("/sdapi", StringComparison.Ordinal)
                ? new { error = kind, detail = message, body = "", errors = message }
                : path.StartsWith("/v1", StringComparison.Ordinal)
                    ? OpenAIEndpoints.Error(message, kind, string.IsNullOrEmpty(field) ? null : field, status == 429 ? "rate_limit_exceeded" : null)
                    : new { error = kind, detail = message };
            await ctx.Response.WriteAsJsonAsync(body);
        }
    }

    // Bearer for OpenAI/native routes, Basic for A1111 routes; the page and health checks stay open.
    private static Task Auth(HttpContext ctx, Func<Task> next, ServerOptions options)
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

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("AsyncDiffusion.Server." + name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
