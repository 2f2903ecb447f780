using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>AUTOMATIC1111's <c>/sdapi/v1</c> API: the shapes Open WebUI, SillyTavern and LibreChat send and read.</summary>
public static class SdapiEndpoints
{
    /// <summary>Jobs started through this API and who started each (<see cref="CallerIdentity"/>), for /progress and /interrupt.</summary>
    private sealed class State
    {
        private readonly List<(Job Job, string Caller)> _active = new();

        public void Add(Job job, string caller)
        {
            lock (_active)
            {
                _active.RemoveAll(a => a.Job.Completion.IsCompleted); // bounded even when nobody polls /progress
                _active.Add((job, caller));
            }
        }

        /// <summary>The caller's unfinished jobs, oldest first.</summary>
        public List<Job> Of(string caller)
        {
            lock (_active)
            {
                _active.RemoveAll(a => a.Job.Completion.IsCompleted);
                return _active.Where(a => a.Caller == caller).Select(a => a.Job).ToList();
            }
        }
    }

    public static void Map(WebApplication app, ModelCatalog catalog, ServerOptions options, JobSubmitter submit)
    {
        var state = new State();
        var settings = new SdapiOptions(options.SdapiOptionsFile, warning => app.Logger.LogWarning("Settings: {Warning}", warning));
        var api = app.MapGroup("/sdapi/v1");

        api.MapPost("/txt2img", (Delegate)((HttpContext ctx) => Generate(ctx, catalog, options, settings, state, submit, img2img: false)));
        api.MapPost("/img2img", (Delegate)((HttpContext ctx) => Generate(ctx, catalog, options, settings, state, submit, img2img: true)));

        // Progress, previews and interrupts concern the caller's own jobs: another client's images are not shown or stopped.
        api.MapGet("/progress", (HttpContext ctx) =>
        {
            var mine = state.Of(CallerIdentity.Of(ctx));
            int count = mine.Count;
            var job = mine.FirstOrDefault(j => j.State == JobState.Running) ?? mine.FirstOrDefault();
            if (job is null)
                return Results.Json(new { progress = 0.0, eta_relative = 0.0, state = Idle(), current_image = (string?)null, textinfo = (string?)null });
            double progress = job.StepsTotal > 0 ? (double)job.StepsDone / job.StepsTotal : 0;
            double elapsed = job.StartedAt is { } started ? (DateTime.UtcNow - started).TotalSeconds : 0;
            bool skipImage = ctx.Request.Query["skip_current_image"].ToString() is "true" or "True" or "1";
            string? preview = skipImage ? null : catalog.Preview(job) is { } png ? Convert.ToBase64String(png) : null;
            return Results.Json(new
            {
                progress,
                eta_relative = progress > 0 ? elapsed / progress - elapsed : 0,
                state = new
                {
                    skipped = false, interrupted = false, job = job.Id, job_count = count, job_timestamp = job.SubmittedAt.ToString("yyyyMMddHHmmss"),
                    job_no = 0, sampling_step = job.StepsDone, sampling_steps = job.StepsTotal,
                },
                current_image = preview,
                textinfo = (string?)null,
            });
        });

        IResult Interrupt(HttpContext ctx)
        {
            foreach (var j in state.Of(CallerIdentity.Of(ctx))) j.Cancel();
            return Results.Json(new { });
        }
        api.MapPost("/interrupt", Interrupt);
        api.MapPost("/skip", Interrupt);

        api.MapGet("/sd-models", () => catalog.Models.Select(m => new
        {
            title = m.Title, model_name = m.Name, hash = m.Hash[..10], sha256 = m.Hash, filename = m.Name, config = (string?)null,
        }));
        api.MapGet("/samplers", SamplerCatalogue.Samplers);
        api.MapGet("/schedulers", SamplerCatalogue.ScheduleTypes);
        api.MapGet("/options", () => Results.Json(settings.Snapshot(new Dictionary<string, JsonNode?>
        {
            [SdapiOptions.CheckpointKey] = catalog.Current.Title,
            ["sd_checkpoint_hash"] = catalog.Current.Hash,
        })));
        api.MapPost("/options", (Delegate)(async (HttpContext ctx) =>
        {
            var body = await Lenient.ReadObjectAsync(ctx.Request);
            var model = body.String(SdapiOptions.CheckpointKey) is { } wanted ? FindModel(catalog, wanted, SdapiOptions.CheckpointKey) : null;
            settings.Write(body); // checks every key it uses before keeping any
            if (model is not null) await catalog.SwitchAsync(model);
            return Results.Text("null", "application/json"); // A1111 answers JSON null, never an empty body
        }));
        api.MapGet("/upscalers", SdapiHiresAndVariation.Upscalers);
        api.MapGet("/latent-upscale-modes", SdapiHiresAndVariation.LatentUpscaleModes);
        foreach (var empty in new[] { "sd-vae", "hypernetworks", "face-restorers", "realesrgan-models", "prompt-styles", "sd-modules" })
            api.MapGet("/" + empty, () => Array.Empty<object>());
        // LoRAs from --lora-dir, for <lora:name:weight> in prompts; the path is the file name only.
        api.MapGet("/loras", () => catalog.Loras.Loras.Select(l => new { name = l.Name, alias = l.Name, path = l.FileName, metadata = l.Metadata }));
        api.MapPost("/refresh-loras", () =>
        {
            catalog.Loras.Refresh();
            return Results.Text("null", "application/json");
        });
        api.MapGet("/embeddings", () => new { loaded = new { }, skipped = new { } });
        api.MapGet("/cmd-flags", () => new { api = true, listen = false });
        api.MapPost("/png-info", (Delegate)(async (HttpContext ctx) =>
        {
            var body = await Lenient.ReadObjectAsync(ctx.Request);
            string image = body.String("image") ?? throw new BadRequestException("image", "image is required (base64 PNG)");
            if (image.Contains(',')) image = image[(image.IndexOf(',') + 1)..];
            byte[] bytes;
            try { bytes = Convert.FromBase64String(image.Trim()); }
            catch (FormatException) { throw new BadRequestException("image", "image is not valid base64"); }
            string info;
            try { info = PngText.ReadChecked(bytes, "image").GetValueOrDefault("parameters", ""); }
            catch (AsyncDiffusionException e) { throw new BadRequestException("image", e.Message); }
            var (_, _, items) = Infotext.Parse(info);
            return Results.Json(new { info, items = new Dictionary<string, string>(items) { ["parameters"] = info } });
        }));
    }

    private static object Idle() => new
    {
        skipped = false, interrupted = false, job = "", job_count = 0, job_timestamp = "0", job_no = 0, sampling_step = 0, sampling_steps = 0,
    };

    private static CatalogModel FindModel(ModelCatalog catalog, string wanted, string field) => catalog.Find(wanted)
        ?? throw new BadRequestException(field, $"{field} names model '{wanted}', which is not listed; choose one of: {string.Join(", ", catalog.Models.Select(m => m.Title))}");

    private static async Task<IResult> Generate(HttpContext ctx, ModelCatalog catalog, ServerOptions options, SdapiOptions stored, State state, JobSubmitter submit, bool img2img)
    {
        // Everything read from the body is read here, before the work: nothing about it can fail afterwards.
        var body = await Lenient.ReadObjectAsync(ctx.Request);
        var overrides = body.Field("override_settings") switch
        {
            null => (JsonElement?)null,
            { ValueKind: JsonValueKind.Object } o => o,
            _ => throw new BadRequestException("override_settings", "override_settings must be an object of setting names and values"),
        };
        var settings = stored.Resolve(overrides);
        // A1111 keeps the overrides as settings when told not to restore them.
        bool restore = body.Bool("override_settings_restore_afterwards") ?? true;
        var model = settings.Checkpoint is { } wanted ? FindModel(catalog, wanted, $"override_settings.{SdapiOptions.CheckpointKey}") : null;
        if (!restore && overrides is { } kept) stored.Write(kept);
        var previous = catalog.Current;
        if (model is not null) await catalog.SwitchAsync(model);
        try
        {
            return await GenerateWith(settings, ctx, body, catalog, options, state, submit, img2img);
        }
        finally
        {
            // Back to the model before the override, unless someone switched again meanwhile.
            if (model is not null && restore && model != previous && catalog.Current == model) await catalog.SwitchAsync(previous);
        }
    }

    private static async Task<IResult> GenerateWith(SdapiSettings settings, HttpContext ctx, JsonElement body, ModelCatalog catalog, ServerOptions options, State state,
        JobSubmitter submit, bool img2img)
    {
        var request = ToRequest(body, catalog, options, img2img, settings);
        var notApplied = SdapiNotApplied.For(body, settings, request.Scheduler ?? catalog.Engine.Model.SchedulerConfig.ClassName, img2img);
        bool sendImages = body.Bool("send_images") ?? true;
        var parameters = Echo(body);
        var model = catalog.Current;
        var job = await submit(request, ctx);
        state.Add(job, CallerIdentity.Of(ctx));
        // A client that hangs up cancels its job.
        using var abort = ctx.RequestAborted.Register(() => job.Cancel());
        JobResult result;
        try
        {
            result = await job.Completion;
        }
        catch (OperationCanceledException)
        {
            // Interrupted (A1111's /interrupt): answer with no images rather than an error.
            return new CompleteJson(new { images = Array.Empty<string>(), parameters, info = "{}" });
        }
        var gen = result.Generation;
        var plan = job.Plan;
        var seeds = gen.Images.Select(i => i.Seed).ToArray();
        SdapiNotApplied.AddModelLimits(notApplied, job.Plan);
        var info = new JsonObject
        {
            ["prompt"] = request.Prompt,
            ["all_prompts"] = new JsonArray(seeds.Select(_ => (JsonNode)request.Prompt).ToArray()),
            ["negative_prompt"] = request.NegativePrompt,
            ["all_negative_prompts"] = new JsonArray(seeds.Select(_ => (JsonNode)request.NegativePrompt).ToArray()),
            ["seed"] = seeds[0],
            ["all_seeds"] = new JsonArray(seeds.Select(s => (JsonNode)s).ToArray()),
            ["subseed"] = plan.Subseeds[0],
            ["all_subseeds"] = new JsonArray(plan.Subseeds.Select(s => (JsonNode)s).ToArray()),
            ["subseed_strength"] = request.SubseedStrength,
            ["seed_resize_from_w"] = request.SeedResizeFromWidth,
            ["seed_resize_from_h"] = request.SeedResizeFromHeight,
            ["width"] = plan.Width, // A1111 reports the first pass's size; hires images are larger
            ["height"] = plan.Height,
            ["sampler_name"] = gen.Scheduler,
            ["cfg_scale"] = request.GuidanceScale,
            ["steps"] = request.Steps,
            ["batch_size"] = request.Count / Math.Max(1, (int)(body.Integer("n_iter") ?? 1)),
            ["n_iter"] = (int)(body.Integer("n_iter") ?? 1),
            ["clip_skip"] = job.Plan.ClipSkip,
            ["tiling"] = request.Tiling,
            ["denoising_strength"] = img2img ? request.Strength : request.Hires?.DenoisingStrength,
            ["sd_model_name"] = catalog.Current.Name,
            ["sd_model_hash"] = catalog.Current.Hash[..10],
            ["infotexts"] = new JsonArray(gen.Images.Select(i => (JsonNode)i.Infotext).ToArray()),
            ["index_of_first_image"] = 0,
            ["job_timestamp"] = job.SubmittedAt.ToString("yyyyMMddHHmmss"),
            ["version"] = "AsyncDiffusion",
            ["not_applied"] = new JsonArray(notApplied.Select(n => (JsonNode)n).ToArray()),
        };
        // The engine encodes PNG; A1111 sends images in its samples_format setting.
        var files = settings.SamplesFormat == ImageFormat.Png ? result.Files : gen.Images.Select(i => ImageCodec.Encode(i.Image, settings.SamplesFormat, i.Infotext)).ToArray();
        return Results.Json(new
        {
            images = sendImages ? files.Select(Convert.ToBase64String).ToArray() : [],
            parameters = Echo(body),
            info = info.ToJsonString(),
        });
    }

    private static readonly JsonElement EmptyArray = JsonDocument.Parse("[]").RootElement.Clone();
    private static readonly JsonElement Null = JsonDocument.Parse("null").RootElement.Clone();

    // A1111 echoes the request's parameters; the parsed body is echoed as it was checked, uploaded images left out
    // (init images as an empty list, the mask as null: A1111 does not echo the mask either).
    private static Dictionary<string, JsonElement> Echo(JsonElement body) =>
        body.EnumerateObject().ToDictionary(p => p.Name, p => p.Name switch
        {
            "init_images" => EmptyArray,
            "mask" => Null,
            _ => p.Value,
        }, StringComparer.Ordinal);

    internal static GenerationRequest ToRequest(JsonElement b, ModelCatalog catalog, ServerOptions options, bool img2img, SdapiSettings settings)
    {
        var limits = options.Limits;
        var schedulerConfig = catalog.Engine.Model.SchedulerConfig;
        string? sampler = SamplerCatalogue.SchedulerFor(b.String("sampler_name") ?? b.String("sampler_index"), b.String("scheduler"), schedulerConfig);
        // eta reaches the samplers that take one (DDIM, TCD): the request's, else the eta_ddim setting, as in A1111.
        double eta = b.Number("eta") ?? settings.EtaDdim;
        if (eta != 0 && (sampler is null ? SchedulerRegistry.CreateDefault(schedulerConfig) : SchedulerRegistry.Create(sampler, schedulerConfig)) is not IEtaScheduler) eta = 0;

        int batch = Lenient.ClampInt(b.Integer("batch_size"), "batch_size", 1, limits.MaxCount, 1);
        int iterations = Lenient.ClampInt(b.Integer("n_iter"), "n_iter", 1, limits.MaxCount, 1);
        if (batch * iterations > limits.MaxCount)
            throw new BadRequestException("batch_size", $"batch_size × n_iter is {batch * iterations}; at most {limits.MaxCount} images per request");

        RgbImage? init = null;
        if (img2img)
        {
            var images = b.Field("init_images");
            if (images is not { ValueKind: JsonValueKind.Array } || images.Value.GetArrayLength() == 0)
                throw new BadRequestException("init_images", "Init image not found", 404);
            var first = images.Value[0];
            if (first.ValueKind != JsonValueKind.String) throw new BadRequestException("init_images", "init_images must hold base64 strings");
            init = UploadedImages.FromBase64(first, "init_images[0]", options.MaxImagePixels);
        }
        string prompt = b.String("prompt") ?? "";
        var request = new GenerationRequest
        {
            Prompt = prompt,
            NegativePrompt = b.String("negative_prompt") ?? "",
            Steps = Lenient.ClampInt(b.Integer("steps"), "steps", 1, limits.MaxSteps, 20),
            GuidanceScale = b.Number("cfg_scale") ?? options.DefaultGuidanceScale ?? 7.0,
            Width = b.Int32("width"),
            Height = b.Int32("height"),
            Seed = b.Integer("seed") ?? -1,
            Count = batch * iterations,
            Scheduler = sampler,
            InitImage = init,
            Strength = b.Number("denoising_strength") ?? 0.75,
            Inpainting = img2img ? SdapiInpainting.Read(b, options) : null,
            InitialNoiseMultiplier = img2img ? SdapiInpainting.NoiseMultiplier(b) : 1.0,
            Eta = eta,
            Rng = settings.Rng,
            ClipSkip = settings.ClipSkip,
            Tiling = b.Bool("tiling") ?? false,
        };
        return SdapiHiresAndVariation.Apply(b, request, catalog, img2img);
    }
}
