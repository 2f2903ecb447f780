using System.Text.Json;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Http;
using AsyncDiffusion.Server.Requests;
using AsyncDiffusion.Server.Storage;

namespace AsyncDiffusion.Server.OpenAI;

/// <summary>OpenAI's Images API (<c>/v1/images</c>): generations, edits and variations, as the official SDKs call them.</summary>
public static class OpenAIEndpoints
{
    private sealed record Ask(GenerationRequest Request, OpenAIImageOutput Output, bool Stream, int PartialImages, string EventPrefix);

    public static void Map(WebApplication app, ModelCatalog catalog, ServerOptions options, ImageStore store, JobSubmitter submit, PublicAddress address)
    {
        app.MapPost("/v1/images/generations", (Delegate)(async (HttpContext ctx) =>
        {
            var b = await Lenient.ReadObjectAsync(ctx.Request);
            string prompt = RequirePrompt(b.String("prompt"));
            var ask = Common(k => b.String(k), k => b.Integer(k), prompt, null, options, catalog, 1.0, "image_generation");
            ask = ask with { Stream = b.Bool("stream") ?? false, PartialImages = (int)Math.Clamp(b.Integer("partial_images") ?? 0, 0, 3) };
            return await Run(ctx, ask, catalog, store, submit, address);
        }));

        app.MapPost("/v1/images/edits", (Delegate)(async (HttpContext ctx) =>
        {
            var form = await ReadForm(ctx.Request);
            var file = form.Files.GetFile("image") ?? form.Files.GetFile("image[]") ?? form.Files.FirstOrDefault(f => f.Name.StartsWith("image", StringComparison.Ordinal))
                ?? throw new BadRequestException("image", "image is required (a PNG, JPEG or WebP file)");
            var init = await Upload(file, options);
            string prompt = RequirePrompt(form["prompt"].Count > 0 ? form["prompt"].ToString() : null);
            var ask = Common(k => form[k].Count > 0 ? form[k].ToString() : null, k => ParseLong(form, k), prompt, init, options, catalog, 0.75, "image_edit");
            if (form.Files.GetFile("mask") is { } mask)
                ask = ask with { Request = ask.Request with { Inpainting = await OpenAIMask.ReadAsync(mask, init, options), Strength = 1.0 } };
            ask = ask with { Stream = form["stream"].ToString() is "true" or "True", PartialImages = (int)Math.Clamp(ParseLong(form, "partial_images") ?? 0, 0, 3) };
            return await Run(ctx, ask, catalog, store, submit, address);
        }));

        app.MapPost("/v1/images/variations", (Delegate)(async (HttpContext ctx) =>
        {
            var form = await ReadForm(ctx.Request);
            var file = form.Files.GetFile("image") ?? throw new BadRequestException("image", "image is required (a PNG, JPEG or WebP file)");
            var init = await Upload(file, options);
            var ask = Common(k => form[k].Count > 0 ? form[k].ToString() : null, k => ParseLong(form, k), "", init, options, catalog, 0.6, "image_variation");
            return await Run(ctx, ask, catalog, store, submit, address);
        }));

        app.MapGet("/v1/images/files/{id}", (string id) =>
            store.Get(id) is { } image ? Results.File(image.Bytes, image.ContentType) : Results.Json(Error("That image does not exist or has expired.", "invalid_request_error", "id", "not_found"), statusCode: 404));
    }

    private static Ask Common(Func<string, string?> text, Func<string, long?> integer, string prompt, RgbImage? init, ServerOptions options, ModelCatalog catalog,
        double strength, string eventPrefix)
    {
        int n = Lenient.ClampInt(integer("n"), "n", 1, Math.Min(10, options.Limits.MaxCount), 1); // checked as the long it was sent as: 2^32 + 1 is not 1
        int? width = null, height = null;
        string size = text("size") ?? "auto";
        if (size != "auto")
        {
            var parts = size.ToLowerInvariant().Split('x');
            if (parts.Length != 2 || !int.TryParse(parts[0], out int w) || !int.TryParse(parts[1], out int h))
                throw new BadRequestException("size", $"size '{size}' is not WIDTHxHEIGHT or auto");
            width = w;
            height = h;
        }
        var output = OpenAIImageOutput.Read(text, integer);
        var request = new GenerationRequest
        {
            Prompt = prompt,
            Width = width,
            Height = height,
            Count = n,
            Steps = Math.Min(20, options.Limits.MaxSteps),
            GuidanceScale = options.DefaultGuidanceScale ?? 7.5,
            InitImage = init,
            Strength = strength,
            Seed = -1,
        };
        return new Ask(request, output, false, 0, eventPrefix);
    }

    private static async Task<IResult> Run(HttpContext ctx, Ask ask, ModelCatalog catalog, ImageStore store, JobSubmitter submit, PublicAddress address)
    {
        var job = await submit(ask.Request, ctx);
        using var abort = ctx.RequestAborted.Register(() => job.Cancel());
        if (ask.Stream)
        {
            await Stream(ctx, job, ask, catalog);
            return Results.Empty;
        }
        var result = await job.Completion;
        var payloads = Payloads(job, ask, catalog.Engine);
        var data = result.Generation.Images.Select((img, i) =>
        {
            var bytes = ask.Output.Finished(result, i);
            if (ask.Output.ResponseFormat == "b64_json") return (object)new { b64_json = Convert.ToBase64String(bytes), revised_prompt = ask.Request.Prompt };
            string id = store.Add(bytes, UploadedImages.ContentType(ask.Output.Format), ImageCodec.Extension(ask.Output.Format));
            return new { url = address.Url($"/v1/images/files/{id}"), revised_prompt = ask.Request.Prompt }; // never from the Host header
        }).ToArray();
        return new CompleteJson(new
        {
            created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            data,
            background = OpenAIImagePayloads.Background,
            output_format = ask.Output.FormatName,
            size = $"{result.Generation.Width}x{result.Generation.Height}",
            usage = payloads.Usage,
        });
    }

    // Server-sent events: TAESD partial images while denoising, then the finished image(s).
    private static async Task Stream(HttpContext ctx, Job job, Ask ask, ModelCatalog catalog)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        var payloads = Payloads(job, ask, catalog.Engine);
        int partials = 0;
        await foreach (var e in job.ReadEventsAsync(ctx.RequestAborted))
        {
            // Spread over the steps that run (an edit at strength 0.75 runs 15 of its 20).
            if (e is JobStep step && partials < ask.PartialImages && step.Step < step.Steps && step.Step % Math.Max(1, step.Steps / (ask.PartialImages + 1)) == 0
                && catalog.Preview(job) is { } png)
                await Send(ctx, payloads.PartialImageEvent, payloads.PartialImage(ask.Output.Preview(png), partials++));
            else if (e is JobFinished done)
                for (int i = 0; i < done.Result.Files.Count; i++)
                    await Send(ctx, payloads.CompletedEvent, payloads.Completed(ask.Output.Finished(done.Result, i)));
            else if (e is JobFailed failed)
                await Send(ctx, "error", Error(failed.Error, "server_error", null, null));
        }
    }

    private static OpenAIImagePayloads Payloads(Job job, Ask ask, DiffusionEngine engine) =>
        new(ask.EventPrefix, ask.Output, job.Plan.Width, job.Plan.Height, engine.Model.Tokenizer.Encode(ask.Request.Prompt).ContentCount);

    // OpenAI refuses a missing or empty prompt (a blank one would generate from nothing but the seed).
    private static string RequirePrompt(string? prompt) =>
        prompt is null ? throw new BadRequestException("prompt", "prompt is required: a text description of the image", code: "missing_required_parameter")
        : string.IsNullOrWhiteSpace(prompt) ? throw new BadRequestException("prompt", "prompt is empty; expected a text description of the image", code: "empty_string")
        : prompt;

    private static async Task Send(HttpContext ctx, string name, object data)
    {
        await ctx.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n");
        await ctx.Response.Body.FlushAsync();
    }

    private static async Task<IFormCollection> ReadForm(HttpRequest request)
    {
        if (!request.HasFormContentType) throw new BadRequestException("body", "expected multipart/form-data with an image file");
        try
        {
            return await request.ReadFormAsync(request.HttpContext.RequestAborted);
        }
        catch (InvalidDataException e)
        {
            throw new BadRequestException("body", $"the form could not be read ({e.Message})", e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase) ? 413 : 400);
        }
        catch (IOException e) when (e is not BadHttpRequestException && !request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            // A body that ends before its closing boundary, or is not multipart at all.
            throw new BadRequestException("body", $"the multipart body is truncated or malformed ({e.Message}); expected multipart/form-data with an image file");
        }
    }

    private static async Task<RgbImage> Upload(IFormFile file, ServerOptions options) =>
        UploadedImages.Decode(await BytesOf(file), "image", options.MaxImagePixels);

    /// <summary>An uploaded file's bytes in one exact-size array (the form is already read: its length is known and within the body limit).</summary>
    internal static async Task<byte[]> BytesOf(IFormFile file)
    {
        var bytes = new byte[file.Length];
        await using (var stream = file.OpenReadStream()) await stream.ReadExactlyAsync(bytes);
        return bytes;
    }

    private static long? ParseLong(IFormCollection form, string key) =>
        form[key].Count == 0 ? null : long.TryParse(form[key].ToString(), out long v) ? v : throw new BadRequestException(key, $"{key} is '{form[key]}'; expected an integer");

    public static object Error(string message, string type, string? param, string? code) => new { error = new { message, type, param, code } };
}
