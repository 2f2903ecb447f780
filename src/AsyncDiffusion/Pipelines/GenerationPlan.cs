using AsyncDiffusion.Models;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// A request checked against a model and the limits, with everything derived from it fixed:
/// size, seeds, scheduler name. Building one is the only validation a request gets; every
/// stage after it can trust its values.
/// </summary>
public sealed record GenerationPlan(GenerationRequest Request, int Width, int Height, long[] Seeds, string SchedulerName, string ModelName)
{
    // Configured once (timesteps set for the steps and strength); never stepped itself.
    private Scheduler _schedule = null!;

    /// <summary>Index in the schedule's timesteps where denoising starts (0 for txt2img; img2img skips the first part).</summary>
    public int StartIndex { get; private init; }

    /// <summary>UNet calls per image: the scheduler's timesteps from the img2img start (PNDM makes one more than steps).</summary>
    public int StepsPerImage { get; private init; }

    /// <summary>The timesteps every image of this request runs through, from its start.</summary>
    public IReadOnlyList<double> Timesteps => _schedule.Timesteps;

    /// <summary>The clip skip the text states are computed with: the request's, or 1 where the model's encoder ignores it (SD 2.x, as in A1111).</summary>
    public int ClipSkip { get; private init; } = 1;

    /// <summary>UNet rows per image and step: 2 with classifier-free guidance (unconditional, conditional), else 1.</summary>
    public int RowsPerImage => Request.UsesGuidance ? 2 : 1;

    public int LatentChannels { get; private init; }

    /// <summary>Channels of the UNet's sample: the latents, or latents + mask + masked-image latents for an inpainting UNet.</summary>
    public int InputChannels { get; private init; }

    /// <summary>Bounds of the mask blur and of the "only masked" padding, in pixels (A1111's sliders stop at 64 and 256).</summary>
    public const int MaxMaskBlur = 64, MaxMaskPadding = 256;
    public int LatentWidth { get; private init; }
    public int LatentHeight { get; private init; }

    /// <summary>A scheduler for one image: the plan's schedule with fresh per-run state (schedulers hold state).</summary>
    public Scheduler CreateScheduler() => _schedule.CloneForRun();

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
        if (r.Tiling)
        {
            // The circular sessions are built on the first tiling request: here, so that a model that
            // cannot tile is refused before any work, and no engine stage waits for a build.
            _ = model.UNet.Circular;
            if (r.Decoder == DecoderKind.Vae) _ = model.VaeDecoder.Circular;
            if (r.IsImageToImage || model.UNet.IsInpainting) _ = model.VaeEncoder?.Circular;
        }

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

        if (r.Seed < -1) throw new AsyncDiffusionException($"seed is {r.Seed}; expected −1 (random) or a seed of 0 or more.");
        long first = r.Seed == -1 ? Random.Shared.NextInt64(0, 1L << 32) : r.Seed;
        var seeds = Enumerable.Range(0, r.Count).Select(i => first + i).ToArray();
        if (r.Rng == Randomness.NoiseGeneratorKind.Numpy && seeds[^1] > uint.MaxValue)
            throw new AsyncDiffusionException($"seed {seeds[^1]} is too large for the numpy generator; numpy accepts 0 to {uint.MaxValue}.");

        // The schedule is built once, here, so an unknown name or an impossible steps/strength fails before any work.
        var scheduler = r.Scheduler is null ? SchedulerRegistry.CreateDefault(model.SchedulerConfig) : SchedulerRegistry.Create(r.Scheduler, model.SchedulerConfig);
        if (scheduler is IEtaScheduler stochastic) stochastic.Eta = r.Eta;
        int start = 0;
        if (r.IsImageToImage) start = scheduler.SetTimestepsForStrength(r.Steps, r.Strength);
        else scheduler.SetTimesteps(r.Steps);
        string name = r.Scheduler is not null && SchedulerRegistry.TryResolve(r.Scheduler, out var entry) ? entry.Name : DisplayName(scheduler.ClassName);
        return new GenerationPlan(r with { NegativePrompt = r.NegativePrompt ?? "" }, width, height, seeds, name, model.Name)
        {
            _schedule = scheduler,
            StartIndex = start,
            StepsPerImage = scheduler.Timesteps.Count - start,
            LatentChannels = model.LatentChannels,
            InputChannels = model.UNet.InputChannels,
            LatentWidth = width / model.VaeScaleFactor,
            LatentHeight = height / model.VaeScaleFactor,
            ClipSkip = model.TextEncoder.IgnoresClipSkip ? 1 : r.ClipSkip,
        };
    }

    private static void CheckSize(string what, int value, int max, ModelFolder model)
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
