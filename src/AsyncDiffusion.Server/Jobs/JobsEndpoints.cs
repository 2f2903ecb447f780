using System.Text.Json;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Jobs;

/// <summary>The native asynchronous jobs API: submit (202), poll, stream events (SSE), cancel, download.</summary>
public static class JobsEndpoints
{
    public static void Map(WebApplication app, ModelCatalog catalog, ServerOptions options)
    {
        var api = app.MapGroup("/api/v1");
        api.MapPost("/jobs", (Delegate)(async (HttpContext ctx) =>
        {
            var b = await Lenient.ReadObjectAsync(ctx.Request);
            var request = ToRequest(b, options);
            var job = await catalog.SubmitAsync(request); // <lora:name:weight> tags pick the merged variant
            return new CompleteJson(Describe(job, ctx), 202);
        }));
        api.MapGet("/jobs/{id}", (string id, HttpContext ctx) => Find(catalog, id) is { } job ? new CompleteJson(Describe(job, ctx)) : NotFound(id));
        api.MapDelete("/jobs/{id}", (string id, HttpContext ctx) =>
        {
            if (Find(catalog, id) is not { } job) return NotFound(id);
            job.Cancel();
            return new CompleteJson(Describe(job, ctx));
        });
        api.MapGet("/jobs/{id}/events", async (string id, HttpContext ctx) =>
        {
            if (Find(catalog, id) is not { } job) return NotFound(id);
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            await foreach (var e in job.ReadEventsAsync(ctx.RequestAborted))
            {
                var (name, data) = e switch
                {
                    JobQueued q => ("queued", (object)new { id = q.JobId, position = q.Position }),
                    JobStarted => ("started", new { id = e.JobId }),
                    JobStep s => ("step", new { id = e.JobId, image = s.ImageIndex, step = s.Step, steps = s.Steps, timestep = s.Timestep }),
                    JobPreview p => ("preview", new { id = e.JobId, image = p.ImageIndex, step = p.Step, png = Convert.ToBase64String(p.Png) }),
                    JobImageReady r => ("image", new { id = e.JobId, image = r.ImageIndex, seed = r.Seed, url = $"/api/v1/jobs/{e.JobId}/images/{r.ImageIndex}" }),
                    JobFinished f => ("done", new { id = e.JobId, state = "succeeded", images = f.Result.Files.Count }),
                    JobFailed f => ("done", new { id = e.JobId, state = "failed", error = f.Error }),
                    _ => ("done", new { id = e.JobId, state = "cancelled" }),
                };
                await ctx.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n");
                await ctx.Response.Body.FlushAsync();
            }
            return Results.Empty;
        });
        api.MapGet("/jobs/{id}/images/{index:int}", (string id, int index) =>
        {
            if (Find(catalog, id) is not { } job) return NotFound(id);
            if (!job.Completion.IsCompletedSuccessfully) return Results.Json(new { error = "not_ready", detail = $"Job {id} is {job.State.ToString().ToLowerInvariant()}." }, statusCode: 409);
            var files = job.Completion.Result.Files;
            return index >= 0 && index < files.Count ? Results.File(files[index], "image/png", $"{id}-{index}.png") : NotFound($"{id}/images/{index}");
        });
        api.MapGet("/jobs/{id}/preview", (string id) =>
            Find(catalog, id) is { } job && catalog.Preview(job) is { } png ? Results.File(png, "image/png") : NotFound(id));
    }

    // Jobs of a previous model stay reachable (and cancellable) after a switch.
    private static Job? Find(ModelCatalog catalog, string id) => catalog.FindJob(id);

    private static IResult NotFound(string id) => Results.Json(new { error = "not_found", detail = $"No job '{id}'." }, statusCode: 404);

    private static object Describe(Job job, HttpContext ctx)
    {
        var r = job.Request;
        return new
        {
            id = job.Id,
            state = job.State.ToString().ToLowerInvariant(),
            steps_done = job.StepsDone,
            steps_total = job.StepsTotal,
            submitted_at = job.SubmittedAt,
            started_at = job.StartedAt,
            seeds = job.Plan.Seeds,
            subseeds = job.Plan.Request.SubseedStrength != 0 ? job.Plan.Subseeds : null,
            width = job.Plan.OutputWidth,
            height = job.Plan.OutputHeight,
            scheduler = job.Plan.SchedulerName,
            prompt = r.Prompt,
            negative_prompt = r.NegativePrompt,
            events = $"/api/v1/jobs/{job.Id}/events",
            images = job.Completion.IsCompletedSuccessfully
                ? job.Completion.Result.Generation.Images.Select((img, i) => new { url = $"/api/v1/jobs/{job.Id}/images/{i}", seed = img.Seed, infotext = img.Infotext }).ToArray()
                : null,
            error = job.Completion.IsFaulted ? job.Completion.Exception!.InnerException!.Message : null,
        };
    }

    /// <summary>A native jobs request body as a generation request (the cluster node maps the same bodies).</summary>
    public static GenerationRequest ToRequest(JsonElement b, ServerOptions options) => JobsHiresAndVariation.Apply(b, new GenerationRequest
    {
        Prompt = b.String("prompt") ?? throw new BadRequestException("prompt", "prompt is required"),
        NegativePrompt = b.String("negative_prompt") ?? "",
        Steps = Lenient.ClampInt(b.Integer("steps"), "steps", 1, options.Limits.MaxSteps, 20),
        GuidanceScale = b.Number("guidance_scale") ?? b.Number("cfg") ?? options.DefaultGuidanceScale ?? 7.5,
        Width = b.Integer("width") is long w ? (int)Math.Clamp(w, 0, 100_000) : null,
        Height = b.Integer("height") is long h ? (int)Math.Clamp(h, 0, 100_000) : null,
        Seed = b.Integer("seed") ?? -1,
        Count = Lenient.ClampInt(b.Integer("n"), "n", 1, options.Limits.MaxCount, 1),
        Scheduler = b.String("scheduler"),
        Decoder = (b.String("decoder") ?? "vae") switch
        {
            "vae" => DecoderKind.Vae,
            "taesd" => DecoderKind.Taesd,
            var d => throw new BadRequestException("decoder", $"decoder '{d}' is not vae or taesd"),
        },
        InitImage = b.Field("init_image") is { } img ? UploadedImages.FromBase64(img, "init_image", options.MaxImagePixels) : null,
        Strength = b.Number("strength") ?? 0.75,
        Inpainting = JobsInpainting.Read(b, options),
        ClipSkip = Lenient.ClampInt(b.Integer("clip_skip"), "clip_skip", 1, GenerationRequest.MaxClipSkip, 1),
        Tiling = b.Bool("tiling") ?? false,
    });
}
