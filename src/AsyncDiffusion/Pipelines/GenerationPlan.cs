using AsyncDiffusion.Models;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// A request checked against a model and the limits, with everything derived from it fixed:
/// size, seeds and variation seeds, the schedule of each denoising pass (hires fix adds a
/// second). Building one is the only validation a request gets; every stage after it can trust
/// its values.
/// </summary>
public sealed record GenerationPlan(GenerationRequest Request, int Width, int Height, long[] Seeds, string SchedulerName, string ModelName)
{
    /// <summary>The request as validated; after <see cref="ReleaseInputs"/>, without its uploaded image.</summary>
    public GenerationRequest Request { get; private set; } = Request;

    /// <summary>Lets go of the request's uploaded image once it has been prepared (its latents live on in the images being denoised).</summary>
    public void ReleaseInputs() => Request = Request.WithoutImages();

    /// <summary>The first (for most requests the only) pass: the request's size and schedule.</summary>
    public DenoisingPass FirstPass { get; private init; } = null!;

    /// <summary>Hires fix's upscale and second pass; null without hires fix.</summary>
    public HiresPass? Hires { get; private init; }

    /// <summary>Variation seeds, one per image (A1111's <c>all_subseeds</c>: subseed + i), resolved even when unused, as A1111 reports them.</summary>
    public long[] Subseeds { get; private init; } = [];

    /// <summary>Index in the first pass's timesteps where denoising starts (0 for txt2img; img2img skips the first part).</summary>
    public int StartIndex => FirstPass.StartIndex;

    /// <summary>UNet calls per image over all passes (PNDM makes one more than steps per pass).</summary>
    public int StepsPerImage => FirstPass.Steps + (Hires?.Pass.Steps ?? 0);

    /// <summary>The timesteps of the first pass's schedule.</summary>
    public IReadOnlyList<double> Timesteps => FirstPass.Timesteps;

    /// <summary>Size of the images the request makes: the hires size with hires fix, else the request's.</summary>
    public int OutputWidth => Hires?.Width ?? Width;
    public int OutputHeight => Hires?.Height ?? Height;

    /// <summary>The clip skip the text states are computed with: the request's, or 1 where the model's encoder ignores it (SD 2.x, as in A1111).</summary>
    public int ClipSkip { get; private init; } = 1;

    /// <summary>UNet rows per image and step: 2 with classifier-free guidance (unconditional, conditional), else 1.</summary>
    public int RowsPerImage => Request.UsesGuidance ? 2 : 1;

    public int LatentChannels { get; private init; }

    /// <summary>Channels of the UNet's sample: the latents, or latents + mask + masked-image latents for an inpainting UNet.</summary>
    public int InputChannels { get; private init; }

    /// <summary>The model's VAE factor (pixels per latent).</summary>
    public int VaeScaleFactor { get; private init; }

    /// <summary>Bounds of the mask blur and of the "only masked" padding, in pixels (A1111's sliders stop at 64 and 256).</summary>
    public const int MaxMaskBlur = 64, MaxMaskPadding = 256;
    public int LatentWidth => FirstPass.LatentWidth;
    public int LatentHeight => FirstPass.LatentHeight;

    /// <summary>A scheduler for one image's first pass (schedulers hold state).</summary>
    public Scheduler CreateScheduler() => FirstPass.CreateScheduler();

    /// <summary>How image <paramref name="index"/>'s noise is made from its seed (A1111's variation seeds).</summary>
    public Variation VariationOf(int index)
    {
        var r = Request;
        bool resized = r.SeedResizeFromWidth > 0 && r.SeedResizeFromHeight > 0;
        return new Variation(Subseeds[index], r.SubseedStrength,
            resized ? (r.SeedResizeFromHeight / VaeScaleFactor, r.SeedResizeFromWidth / VaeScaleFactor) : null);
    }

    public static GenerationPlan Create(GenerationRequest r, ModelFolder model, GenerationLimits? limits = null)
    {
        limits ??= GenerationLimits.Default;
        if (r.Prompt is null) throw new AsyncDiffusionException("prompt is missing; expected text.");
        if (r.Prompt.Length > limits.MaxPromptCharacters || (r.NegativePrompt?.Length ?? 0) > limits.MaxPromptCharacters)
            throw new AsyncDiffusionException($"prompt is longer than {limits.MaxPromptCharacters:N0} characters.");
        if (r.Steps < 1 || r.Steps > limits.MaxSteps)
            throw new AsyncDiffusionException($"steps is {r.Steps}; expected 1 to {limits.MaxSteps}.");
        if (!double.IsFinite(r.GuidanceScale) || r.GuidanceScale < 0 || r.GuidanceScale > limits.MaxGuidanceScale)
            throw new AsyncDiffusionException($"guidance scale (cfg) is {r.GuidanceScale}; expected 0 to {limits.MaxGuidanceScale}.");
        if (r.Count < 1 || r.Count > limits.MaxCount)
            throw new AsyncDiffusionException($"image count is {r.Count}; expected 1 to {limits.MaxCount}.");
        if (!double.IsFinite(r.Eta) || r.Eta < 0 || r.Eta > 1)
            throw new AsyncDiffusionException($"eta is {r.Eta}; expected 0 to 1.");

        if (r.ClipSkip < 1 || r.ClipSkip > GenerationRequest.MaxClipSkip)
            throw new AsyncDiffusionException($"clip skip is {r.ClipSkip}; expected 1 (the text encoder's last layer) to {GenerationRequest.MaxClipSkip}.");
        model.TextEncoder.CheckClipSkip(r.ClipSkip);

        int width = r.Width ?? model.NativeSize, height = r.Height ?? model.NativeSize;
        CheckSize("width", width, limits.MaxWidth, model);
        CheckSize("height", height, limits.MaxHeight, model);

        if (r.IsImageToImage)
        {
            if (model.VaeEncoder is null)
                throw new AsyncDiffusionException($"Model '{model.Name}' has no vae_encoder/, which img2img needs; use txt2img or a model exported with its VAE encoder.");
            if (!(r.Strength > 0 && r.Strength <= 1))
                throw new AsyncDiffusionException($"strength is {r.Strength}; expected a value in (0, 1].");
            if (!double.IsFinite(r.InitialNoiseMultiplier) || r.InitialNoiseMultiplier < 0 || r.InitialNoiseMultiplier > 2)
                throw new AsyncDiffusionException($"initial noise multiplier is {r.InitialNoiseMultiplier}; expected 0 to 2.");
        }
        if (r.Inpainting is { } inpainting)
        {
            if (!r.IsImageToImage)
                throw new AsyncDiffusionException("a mask needs an init image: inpainting repaints the masked part of that image; give the init image too.");
            if (inpainting.BlurX is < 0 or > MaxMaskBlur || inpainting.BlurY is < 0 or > MaxMaskBlur)
                throw new AsyncDiffusionException($"mask blur is {inpainting.BlurX}×{inpainting.BlurY}; expected 0 to {MaxMaskBlur} pixels.");
            if (inpainting.Padding is < 0 or > MaxMaskPadding)
                throw new AsyncDiffusionException($"inpainting padding is {inpainting.Padding}; expected 0 to {MaxMaskPadding} pixels.");
            if (!Enum.IsDefined(inpainting.Fill))
                throw new AsyncDiffusionException($"masked content is {(int)inpainting.Fill}; expected 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing).");
        }

        var (seeds, subseeds) = ResolveSeeds(r, limits);

        // The schedules are built once, here, so an unknown name or an impossible steps/strength fails before any work.
        var scheduler = CreateScheduler(r.Scheduler, r.Eta, model);
        int start = 0;
        if (r.IsImageToImage) start = scheduler.SetTimestepsForStrength(r.Steps, r.Strength);
        else scheduler.SetTimesteps(r.Steps);
        var first = new DenoisingPass(scheduler, start, width / model.VaeScaleFactor, height / model.VaeScaleFactor);
        var hires = r.Hires is null ? null : HiresPass.Create(r, width, height, model, limits);
        if (r.Tiling) BuildCircularSessions(r, model, hires);
        return new GenerationPlan(r with { NegativePrompt = r.NegativePrompt ?? "" }, width, height, seeds, SchedulerNameOf(r.Scheduler, scheduler), model.Name)
        {
            FirstPass = first,
            Hires = hires,
            Subseeds = subseeds,
            LatentChannels = model.LatentChannels,
            InputChannels = model.UNet.InputChannels,
            VaeScaleFactor = model.VaeScaleFactor,
            ClipSkip = model.TextEncoder.IgnoresClipSkip ? 1 : r.ClipSkip,
        };
    }

    // Seamless tiling runs circular variants of the UNet and VAE, built on the first tiling request:
    // here, after every other check, so that a model that cannot tile is refused before any work
    // and no engine stage waits for a build.
    private static void BuildCircularSessions(GenerationRequest r, ModelFolder model, HiresPass? hires)
    {
        _ = model.UNet.Circular;
        if (r.Decoder == DecoderKind.Vae) _ = model.VaeDecoder.Circular;
        if (r.IsImageToImage || model.UNet.IsInpainting || hires?.Upscaler.NeedsVaeEncoder == true) _ = model.VaeEncoder?.Circular;
    }

    // A1111: image i uses seed + i, except with a variation strength, where every image uses the seed and the subseeds count up.
    private static (long[] Seeds, long[] Subseeds) ResolveSeeds(GenerationRequest r, GenerationLimits limits)
    {
        if (r.Seed < -1) throw new AsyncDiffusionException($"seed is {r.Seed}; expected −1 (random) or a seed of 0 or more.");
        if (r.Subseed < -1) throw new AsyncDiffusionException($"subseed (variation seed) is {r.Subseed}; expected −1 (random) or a seed of 0 or more.");
        if (!(r.SubseedStrength >= 0 && r.SubseedStrength <= 1))
            throw new AsyncDiffusionException($"subseed strength (variation strength) is {r.SubseedStrength}; expected 0 to 1.");
        if (r.SeedResizeFromWidth > limits.MaxWidth || r.SeedResizeFromHeight > limits.MaxHeight)
            throw new AsyncDiffusionException($"seed resize from is {r.SeedResizeFromWidth}x{r.SeedResizeFromHeight}; expected at most {limits.MaxWidth}x{limits.MaxHeight} (0 or less: off).");
        if (r.IsImageToImage && (r.SubseedStrength != 0 || (r.SeedResizeFromWidth > 0 && r.SeedResizeFromHeight > 0)))
            throw new AsyncDiffusionException("variation seeds (subseed strength, seed resize from) apply to txt2img only; set the subseed strength to 0 and leave out seed resize for img2img.");
        long first = r.Seed == -1 ? Random.Shared.NextInt64(0, 1L << 32) : r.Seed;
        long firstSub = r.Subseed == -1 ? Random.Shared.NextInt64(0, 4294967294) : r.Subseed;
        bool varies = r.SubseedStrength != 0;
        var seeds = Enumerable.Range(0, r.Count).Select(i => first + (varies ? 0 : i)).ToArray();
        var subseeds = Enumerable.Range(0, r.Count).Select(i => firstSub + i).ToArray();
        if (r.Rng == Randomness.NoiseGeneratorKind.Numpy)
        {
            if (seeds[^1] > uint.MaxValue)
                throw new AsyncDiffusionException($"seed {seeds[^1]} is too large for the numpy generator; numpy accepts 0 to {uint.MaxValue}.");
            if (varies && subseeds[^1] > uint.MaxValue)
                throw new AsyncDiffusionException($"subseed {subseeds[^1]} is too large for the numpy generator; numpy accepts 0 to {uint.MaxValue}.");
        }
        return (seeds, subseeds);
    }

    /// <summary>The named scheduler (or the model's own) with the request's eta; its timesteps are set by the caller.</summary>
    internal static Scheduler CreateScheduler(string? name, double eta, ModelFolder model)
    {
        var scheduler = name is null ? SchedulerRegistry.CreateDefault(model.SchedulerConfig) : SchedulerRegistry.Create(name, model.SchedulerConfig);
        if (scheduler is IEtaScheduler stochastic) stochastic.Eta = eta;
        return scheduler;
    }

    /// <summary>The name infotexts show for a scheduler: the registry's name for a named one, else the class's display name.</summary>
    internal static string SchedulerNameOf(string? requested, Scheduler scheduler) =>
        requested is not null && SchedulerRegistry.TryResolve(requested, out var entry) ? entry.Name : DisplayName(scheduler.ClassName);

    internal static void CheckPromptLength(string? text, GenerationLimits limits, string what)
    {
        if ((text?.Length ?? 0) > limits.MaxPromptCharacters)
            throw new AsyncDiffusionException($"{what} is longer than {limits.MaxPromptCharacters:N0} characters.");
    }

    internal static void CheckSize(string what, int value, int max, ModelFolder model)
    {
        int multiple = model.SizeMultiple;
        if (value < multiple || value > max || value % 8 != 0)
            throw new AsyncDiffusionException($"{what} is {value}; expected a multiple of 8 from {multiple} to {max}.");
        if (value % multiple != 0)
            throw new AsyncDiffusionException($"{what} is {value}; this model needs multiples of {multiple} (VAE factor {model.VaeScaleFactor} × UNet down-sampling {model.UNet.LatentMultiple}), e.g. {value / multiple * multiple} or {(value / multiple + 1) * multiple}.");
    }

    private static string DisplayName(string className) =>
        SchedulerRegistry.Entries.FirstOrDefault(e => e.ClassName == className && e.Overrides.Count == 0)?.Name ?? className;
}
