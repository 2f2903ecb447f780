using System.Diagnostics;
using System.Reflection;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Jobs;
using AsyncDiffusion.Server.Monitoring;
using AsyncDiffusion.Server.OpenAI;
using AsyncDiffusion.Server.Requests;
using AsyncDiffusion.Server.Sdapi;
using AsyncDiffusion.Server.Storage;
using Microsoft.AspNetCore.Http.Features;

namespace AsyncDiffusion.Server;

/// <summary>
/// The HTTP server: AUTOMATIC1111's /sdapi/v1, OpenAI's /v1/images, the native /api/v1/jobs,
/// operations endpoints and a web page, on one engine. Endpoints stay thin: they map API shapes
/// to <c>GenerationRequest</c> and back; errors come out in the shape of the API called.
/// </summary>
public static class ServerApp
{
    public static WebApplication Build(ServerOptions options, ServerExtension? extension = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBodyBytes);
        builder.Services.Configure<FormOptions>(f => f.MultipartBodyLengthLimit = options.MaxBodyBytes);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        extension?.ConfigureServices(builder);
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
        app.Use((ctx, next) => ErrorResponses.Handle(ctx, next, metrics, log));
        app.Use((ctx, next) => ApiAuthentication.Check(ctx, next, options));

        app.MapGet("/", () => Results.Content(Resource("index.html"), "text/html; charset=utf-8"));
        app.MapGet("/api/v1/openapi.json", () => Results.Content(Resource("openapi.json"), "application/json"));
        app.MapGet("/health", () => Results.Json(new { status = "ok" }));
        var engineOptions = options.Engine;
        log.LogInformation("Engine: {Streams} stream(s) × {Threads} thread(s), batch up to {Batch}; {Why}", engineOptions.Streams,
            DiffusionEngine.SessionSettingsFor(engineOptions).IntraOpThreads, engineOptions.MaxBatch, engineOptions.Rationale ?? "as configured");
        app.MapGet("/ready", () => Results.Json(new
        {
            status = "ready",
            model = catalog.Current.Name,
            built_in = catalog.Current.BuiltIn,
            engine = new
            {
                mode = engineOptions.Mode.ToString().ToLowerInvariant(),
                streams = engineOptions.Streams,
                threads_per_stream = DiffusionEngine.SessionSettingsFor(engineOptions).IntraOpThreads,
                max_batch = engineOptions.MaxBatch,
                exclusive_compute = engineOptions.ExclusiveCompute,
                why = engineOptions.Rationale ?? "as configured",
            },
        }));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(catalog.Engine.Stats), "text/plain; version=0.0.4"));

        var parts = new ServerParts(options, catalog, metrics);
        var submit = extension?.CreateSubmitter(app.Services, parts) ?? ((request, _) =>
        {
            var (engine, prepared) = catalog.Prepare(request); // <lora:name:weight> tags pick the merged variant
            return Task.FromResult(engine.Submit(prepared));
        });
        SdapiEndpoints.Map(app, catalog, options, submit);
        OpenAIEndpoints.Map(app, catalog, options, store, submit);
        JobsEndpoints.Map(app, catalog, options);
        if (extension is not null)
        {
            // The extension's routes win over built-in routes with the same pattern (lower order is preferred).
            var overrides = app.MapGroup("").WithOrder(-1);
            extension.MapRoutes(overrides, parts);
        }
        return app;
    }

    private static string Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("AsyncDiffusion.Server." + name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
