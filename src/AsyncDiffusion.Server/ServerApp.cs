using System.Reflection;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Jobs;
using AsyncDiffusion.Server.Monitoring;
using AsyncDiffusion.Server.OpenAI;
using AsyncDiffusion.Server.Sdapi;
using AsyncDiffusion.Server.Storage;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;

namespace AsyncDiffusion.Server;

/// <summary>
/// The HTTP server: AUTOMATIC1111's /sdapi/v1, OpenAI's /v1/images, the native /api/v1/jobs,
/// operations endpoints and a web page, on one engine. Endpoints stay thin: they map API shapes
/// to <c>GenerationRequest</c> and back; errors come out in the shape of the API called.
/// </summary>
public static class ServerApp
{
    /// <param name="options">Checked first (<see cref="ServerOptions.Validate"/>): a bad option is an <see cref="AsyncDiffusionException"/> before any model loads.</param>
    /// <param name="extension">What another component (the cluster node) adds; null: the server on its own engine.</param>
    /// <param name="logging">Extra logging set-up (tests capture the log).</param>
    /// <param name="openModel">Opens a model folder as an engine; default <see cref="DiffusionEngine.Open"/>.</param>
    public static WebApplication Build(ServerOptions options, ServerExtension? extension = null, Action<ILoggingBuilder>? logging = null,
        Func<string, DiffusionEngine>? openModel = null)
    {
        var listen = options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBodyBytes);
        builder.Services.Configure<FormOptions>(f => f.MultipartBodyLengthLimit = options.MaxBodyBytes);
        // One line per request comes from RequestLog; ASP.NET's own per-request lines (which also show query strings) are silenced.
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddSimpleConsole(c => c.SingleLine = true);
        logging?.Invoke(builder.Logging);
        extension?.ConfigureServices(builder);
        var app = builder.Build();
        var log = app.Logger;
        if (!listen.LoopbackOnly && options.ApiKey is null && options.ApiAuth is null)
            log.LogWarning("INSECURE: listening on {Urls} without --api-key or --api-auth (--insecure-public): anyone who can reach this machine can use the server.", options.Urls);

        var catalog = new ModelCatalog(options, log, openModel);
        var metrics = new ServerMetrics();
        var store = new ImageStore(options.ImageRetention, options.ImageStoreBytes);
        var address = new PublicAddress(options, app.Services.GetRequiredService<IServer>());
        var hosts = new HostFilter(listen, options.AllowedHosts);
        var slots = new RequestSlots(options.Engine.MaxJobs);
        void Hook(DiffusionEngine e)
        {
            e.JobEnded += metrics.Observe;
            e.JobEnded += job =>
            {
                if (job.ErrorId is not { } id) return;
                log.LogError(job.Error, "Job {Job} failed: internal error {Id}", job.Id, id);
                RequestLog.MarkLogged(job.Error!);
            };
        }
        Hook(catalog.Engine);
        catalog.EngineChanged += Hook;
        app.Lifetime.ApplicationStopped.Register(catalog.Dispose);

        app.Use((ctx, next) => RequestLog.Write(ctx, next, log));
        app.Use((ctx, next) => ErrorResponses.Handle(ctx, next, metrics));
        app.Use(hosts.Check);
        app.Use((ctx, next) => ApiAuthentication.Check(ctx, next, options));
        app.Use(ContentTypes.Check);
        app.Use(slots.Gate);

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
        app.MapGet("/metrics", () => Results.Text(metrics.Render(catalog.Stats), "text/plain; version=0.0.4"));

        var parts = new ServerParts(options, catalog, metrics);
        // <lora:name:weight> tags pick the merged variant.
        var submit = extension?.CreateSubmitter(app.Services, parts) ?? ((request, _) => catalog.SubmitAsync(request));
        SdapiEndpoints.Map(app, catalog, options, submit);
        OpenAIEndpoints.Map(app, catalog, options, store, submit, address);
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
