using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion generate PROMPT [options]</c>: txt2img, img2img with --init-image, inpainting with --init-image and --mask.</summary>
public static class GenerateCommand
{
    public static Command Create(CliContext cli)
    {
        var prompt = new Argument<string>("prompt") { Description = "What to draw." };
        var negative = new Option<string>("--negative") { Description = "Negative prompt (what to steer away from).", DefaultValueFactory = _ => "" };
        var model = new Option<string?>("--model") { Description = CheckpointOptions.ModelHelp + " Default: the built-in tiny-shapes model (64x64 coloured shapes, e.g. \"a red circle on a blue background\")." };
        var checkpoint = new CheckpointOptions();
        var steps = new Option<int>("--steps") { Description = "Denoising steps.", DefaultValueFactory = _ => 20 };
        var cfg = new Option<double?>("--cfg") { Description = "Classifier-free guidance scale (≤ 1 disables guidance, as SD-Turbo/LCM want). Default: the model's own if its folder names one (2.5 for the built-in model), else 7.5." };
        var width = new Option<int?>("--width") { Description = "Image width (multiple of 8; the model may need 64). Default: the model's native size." };
        var height = new Option<int?>("--height") { Description = "Image height." };
        var size = new Option<string?>("--size") { Description = "WIDTHxHEIGHT, e.g. 512x512 (instead of --width/--height)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the first image; image i uses seed + i. -1: random.", DefaultValueFactory = _ => -1 };
        var scheduler = new Option<string?>("--scheduler") { Description = "Scheduler: Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, LMS, DDIM, PNDM, DDPM, LCM… Default: the model's." };
        var count = new Option<int>("--n") { Description = "Number of images.", DefaultValueFactory = _ => 1 };
        var init = new Option<string?>("--init-image") { Description = "img2img: the starting image (PNG, JPEG, WebP, BMP)." };
        var strength = new Option<double>("--strength") { Description = "img2img: how much to change the image, in (0, 1].", DefaultValueFactory = _ => 0.75 };
        var mask = new Option<string?>("--mask") { Description = "Inpainting (with --init-image): a mask image; white (or opaque, if it has transparency) marks what to repaint." };
        var maskBlur = new Option<int>("--mask-blur") { Description = "Inpainting: Gaussian blur of the mask in pixels (0 to 64).", DefaultValueFactory = _ => 4 };
        var invertMask = new Option<bool>("--invert-mask") { Description = "Inpainting: repaint what is not masked." };
        var fullRes = new Option<bool>("--inpaint-full-res") { Description = "Inpainting: generate only the masked region (plus --padding) at the full size, then paste it back." };
        var padding = new Option<int>("--padding") { Description = "Inpainting with --inpaint-full-res: pixels around the masked region (0 to 256).", DefaultValueFactory = _ => 32 };
        var maskedContent = new Option<string>("--masked-content") { Description = "Inpainting: what the masked area starts from: original, fill, latent-noise or latent-nothing.", DefaultValueFactory = _ => "original" };
        var subseed = new Option<long>("--subseed") { Description = "Variation seed of the first image (image i uses subseed + i). -1: random.", DefaultValueFactory = _ => -1 };
        var subseedStrength = new Option<double>("--subseed-strength") { Description = "How far the noise moves from the seed's towards the subseed's (A1111's variation strength), 0 to 1.", DefaultValueFactory = _ => 0 };
        var seedResize = new Option<string?>("--seed-resize-from") { Description = "WIDTHxHEIGHT: make the seed's noise as if for this size and paste it centred (A1111's seed resize)." };
        var hires = new HiresOptionSet();
        var decoder = new Option<string?>("--decoder") { Description = "vae (the model's) or taesd (fast). Default: vae (the built-in model's VAE is TAESD)." };
        var rng = new Option<string>("--rng") { Description = "Noise generator: torch (PyTorch CPU), numpy (diffusers ONNX), philox (AUTOMATIC1111 GPU/NV).", DefaultValueFactory = _ => "torch" };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var optimize = new Option<string>("--optimize") { Description = "Graph optimisation: basic (loads ~4× faster) or all (each step ~5-9 % faster).", DefaultValueFactory = _ => "all" };
        var output = new Option<string>("--out") { Description = "Output folder.", DefaultValueFactory = _ => "outputs" };
        var format = new Option<string>("--format") { Description = "png (with A1111 infotext), jpeg or webp.", DefaultValueFactory = _ => "png" };
        var json = new Option<bool>("--json") { Description = "Print a machine-readable summary instead of tables." };
        var budget = new Option<string?>("--memory-budget") { Description = MemoryBudgetHelp };
        var unfused = new Option<bool>("--unfused-attention") { Description = "Run attention as exported (MatMul, Softmax, MatMul) instead of ONNX Runtime's fused MultiHeadAttention." };
        var profile = new Option<string?>("--profile") { Description = "Write ONNX Runtime's per-operator profiles into this folder and print time by operator type and a memory timeline." };

        var clipSkip = new Option<int>("--clip-skip") { Description = "Take the text encoder's states this many layers from the end (A1111's clip skip; 1: the last layer; SD 2.x models ignore it, as in A1111).", DefaultValueFactory = _ => 1 };
        var tiling = new Option<bool>("--tiling") { Description = "Seamless tiling: the image's edges continue each other (circular padding in the UNet and VAE)." };

        var command = new Command("generate", "Generate images from a prompt (txt2img), or from a prompt and an image (img2img).")
        {
            prompt, negative, model, steps, cfg, width, height, size, seed, subseed, subseedStrength, seedResize, scheduler, count, init, strength, mask, maskBlur, invertMask,
            fullRes, padding, maskedContent, decoder, rng, threads, optimize, output, format, json, profile, unfused, budget,
        };
        hires.AddTo(command);
        command.Options.Add(clipSkip);
        command.Options.Add(tiling);
        checkpoint.AddTo(command);
        command.SetAction(parse => cli.Guard(() =>
        {
            var (w, h) = ParseSize(parse.GetValue(size), parse.GetValue(width), parse.GetValue(height));
            var imageFormat = ImageCodec.ParseFormat(parse.GetValue(format)!);
            string? initPath = parse.GetValue(init);
            var initImage = initPath is null ? null : ImageCodec.Decode(initPath);
            var inpainting = ReadInpainting(parse.GetValue(mask), parse.GetValue(maskBlur), parse.GetValue(invertMask), parse.GetValue(fullRes), parse.GetValue(padding),
                parse.GetValue(maskedContent)!);
            bool builtIn = parse.GetValue(model) is null;
            var decoderKind = BenchmarkCommand.ParseDecoder(parse.GetValue(decoder) ?? "vae");
            var (resizeWidth, resizeHeight) = ParseSize(parse.GetValue(seedResize), null, null, "--seed-resize-from");
            var request = new GenerationRequest
            {
                Prompt = parse.GetValue(prompt)!,
                NegativePrompt = parse.GetValue(negative)!,
                Steps = parse.GetValue(steps),
                GuidanceScale = parse.GetValue(cfg) ?? DefaultGuidanceScale,
                Width = w,
                Height = h,
                Seed = parse.GetValue(seed),
                Subseed = parse.GetValue(subseed),
                SubseedStrength = parse.GetValue(subseedStrength),
                SeedResizeFromWidth = resizeWidth ?? 0,
                SeedResizeFromHeight = resizeHeight ?? 0,
                Hires = hires.Read(parse),
                Count = parse.GetValue(count),
                Scheduler = parse.GetValue(scheduler),
                InitImage = initImage,
                Strength = parse.GetValue(strength),
                Inpainting = inpainting,
                Decoder = decoderKind,
                Rng = NoiseGenerators.Parse(parse.GetValue(rng)!),
                ClipSkip = parse.GetValue(clipSkip),
                Tiling = parse.GetValue(tiling),
            };
            bool asJson = parse.GetValue(json);

            var import = checkpoint.Import(parse, parse.GetValue(model));
            if (builtIn) cli.Error.WriteLine(BuiltInModel.Notice);
            string folder = builtIn ? BuiltInModel.Ensure() : CheckpointOptions.ResolveImport(import, cli, showProgress: !asJson)?.Folder ?? parse.GetValue(model)!;
            var memoryPlan = parse.GetValue(budget) is { } budgetText ? MemoryBudget.PlanBeforeLoading(folder, w, h, MemoryBudget.Parse(budgetText)) : null;
            if (memoryPlan is not null)
            {
                cli.Error.WriteLine(memoryPlan.Describe());
                request = request with { CfgAsBatch = !memoryPlan.Policy.SequentialGuidance };
            }
            var settings = new SessionSettings
            {
                IntraOpThreads = parse.GetValue(threads),
                Optimization = SessionSettings.ParseOptimization(parse.GetValue(optimize)!),
                OptimizedModelCache = OptimizedModelCache.DefaultFolder,
                ProfilePrefix = ProfileReport.Prefix(parse.GetValue(profile)),
                FuseAttention = !parse.GetValue(unfused),
                Memory = memoryPlan?.Policy ?? MemoryPolicy.Default,
            };
            var timeline = parse.GetValue(profile) is null ? null : new MemoryTimeline();
            timeline?.Mark("start");
            using var loaded = ModelFolder.Open(folder, settings);
            timeline?.Mark("model loaded");
            if (parse.GetValue(cfg) is null && loaded.RecommendedGuidanceScale is double recommended) request = request with { GuidanceScale = recommended };
            using var pipeline = new StableDiffusionPipeline(loaded, settings);
            var plan = GenerationPlan.Create(request, loaded); // rejects bad input before any work or output

            return cli.Cancellable(cancellation =>
            {
                var result = asJson ? pipeline.Run(plan, null, cancellation, timeline) : RunWithProgress(cli, pipeline, plan, cancellation, timeline);
                var files = Save(result, parse.GetValue(output)!, imageFormat);
                if (asJson) WriteJson(cli.Output, result, files, loaded);
                else WriteSummary(cli.Console, result, files);
                if (parse.GetValue(profile) is { } profileFolder)
                    ProfileReport.Write(cli, profileFolder, OperatorProfile.Read(ProfileReport.Collect(loaded.EndProfiling(), profileFolder)), timeline!.Marks, asJson,
                        MachineProbe.Run(parse.GetValue(threads))); // after the run, so the probe does not share the cores with it
                return 0;
            });
        }));
        return command;
    }

    /// <summary>Guidance when neither --cfg nor the model's folder gives one (diffusers' default).</summary>
    public const double DefaultGuidanceScale = 7.5;

    internal const string MemoryBudgetHelp =
        "Keep the peak memory under this size (e.g. 6GB, 5.5GiB): picks guidance as two UNet calls and smaller decode tiles as needed; a budget the model cannot meet is an error.";

    private static InpaintingOptions? ReadInpainting(string? path, int blur, bool invert, bool onlyMasked, int padding, string content)
    {
        if (path is null) return null;
        RgbaImage image;
        try
        {
            image = ImageCodec.DecodeRgba(path);
        }
        catch (AsyncDiffusionException e)
        {
            throw new AsyncDiffusionException($"--mask: {e.Message}");
        }
        return new InpaintingOptions(InpaintMasks.FromImage(image))
        {
            BlurX = blur,
            BlurY = blur,
            Invert = invert,
            OnlyMasked = onlyMasked,
            Padding = padding,
            Fill = InpaintingOptions.ParseMaskedContent(content)
                ?? throw new AsyncDiffusionException($"--masked-content '{content}' is not one of: original, fill, latent-noise, latent-nothing."),
        };
    }

    internal static (int? Width, int? Height) ParseSize(string? size, int? width, int? height, string option = "--size")
    {
        if (size is null) return (width, height);
        var parts = size.ToLowerInvariant().Split('x');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int w) || !int.TryParse(parts[1], out int h))
            throw new AsyncDiffusionException($"{option} '{size}' is not WIDTHxHEIGHT; expected e.g. 512x512.");
        if (width is not null || height is not null) throw new AsyncDiffusionException("Give either --size or --width/--height, not both.");
        return (w, h);
    }

    private static GenerationResult RunWithProgress(CliContext cli, StableDiffusionPipeline pipeline, GenerationPlan plan, CancellationToken cancellation, MemoryTimeline? timeline)
    {
        GenerationResult? result = null;
        cli.Console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<int, ProgressTask>();
                var started = new Dictionary<int, DateTime>();
                result = pipeline.Run(plan, step =>
                {
                    if (!tasks.TryGetValue(step.ImageIndex, out var task))
                    {
                        task = tasks[step.ImageIndex] = ctx.AddTask($"image {step.ImageIndex + 1}/{step.ImageCount}", maxValue: step.Steps);
                        started[step.ImageIndex] = DateTime.UtcNow;
                    }
                    double seconds = (DateTime.UtcNow - started[step.ImageIndex]).TotalSeconds;
                    double rate = seconds > 0 ? step.Step / seconds : 0;
                    task.Description = $"image {step.ImageIndex + 1}/{step.ImageCount} · step {step.Step}/{step.Steps} · {rate:F2} it/s";
                    task.Value = step.Step;
                }, cancellation, timeline);
            });
        return result!;
    }

    private static List<string> Save(GenerationResult result, string folder, ImageFormat format)
    {
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        string stamp = DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        foreach (var image in result.Images)
        {
            var bytes = ImageCodec.Encode(image.Image, format, image.Infotext);
            // CreateNew never overwrites: a taken name gets a counter.
            for (int k = 0; ; k++)
            {
                string path = Path.Combine(folder, $"{stamp}-{image.Seed}{(k == 0 ? "" : $"-{k}")}{ImageCodec.Extension(format)}");
                try
                {
                    using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
                    stream.Write(bytes);
                    files.Add(path);
                    break;
                }
                catch (IOException) when (File.Exists(path)) { }
            }
        }
        return files;
    }

    private static void WriteSummary(IAnsiConsole console, GenerationResult r, List<string> files)
    {
        var t = r.Timings;
        var table = new Table().Border(TableBorder.Rounded).AddColumn("stage").AddColumn(new TableColumn("time").RightAligned());
        table.AddRow("tokenize", $"{t.TokenizeMs:F1} ms");
        table.AddRow("text encoder", $"{t.TextEncodeMs:F1} ms");
        if (t.ImageEncodeMs > 0) table.AddRow("VAE encoder (init image)", $"{t.ImageEncodeMs:F1} ms");
        if (t.HiresUpscaleMs > 0) table.AddRow("hires upscale", $"{t.HiresUpscaleMs:F1} ms");
        if (t.UNetStepMs.Count > 0)
            table.AddRow($"UNet ({t.UNetStepMs.Count} steps, {t.UNetStepMs.Average():F1} ms/step)", $"{t.UNetTotalMs:F1} ms");
        table.AddRow("decode", $"{t.DecodeMs:F1} ms");
        table.AddRow("[bold]total[/]", $"[bold]{t.TotalMs:F1} ms[/]");
        table.AddRow("peak memory", $"{r.PeakMemoryBytes / 1048576.0:F0} MiB");
        console.Write(table);
        foreach (var (file, image) in files.Zip(r.Images))
            console.MarkupLine($"Saved [bold]{Markup.Escape(file)}[/] (seed {image.Seed}, {r.Width}x{r.Height}, {Markup.Escape(r.Scheduler)})");
    }

    private static void WriteJson(TextWriter output, GenerationResult r, List<string> files, ModelFolder model)
    {
        var t = r.Timings;
        var payload = new
        {
            model = model.Path,
            synthetic = model.SyntheticPreset is not null,
            width = r.Width,
            height = r.Height,
            scheduler = r.Scheduler,
            images = files.Zip(r.Images, (f, i) => new { file = f, seed = i.Seed, infotext = i.Infotext }).ToArray(),
            timings_ms = new
            {
                tokenize = t.TokenizeMs,
                text_encode = t.TextEncodeMs,
                image_encode = t.ImageEncodeMs,
                hires_upscale = t.HiresUpscaleMs,
                unet_steps = t.UNetStepMs,
                unet_total = t.UNetTotalMs,
                decode = t.DecodeMs,
                total = t.TotalMs,
            },
            peak_memory_bytes = r.PeakMemoryBytes,
        };
        output.WriteLine(JsonSerializer.Serialize(payload, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }
}
