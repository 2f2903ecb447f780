using AsyncDiffusion.Imaging;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Pipelines;

/// <summary>Which decoder turns latents into the final image.</summary>
public enum DecoderKind
{
    /// <summary>The model's own VAE decoder (full quality).</summary>
    Vae,
    /// <summary>TAESD: about 30× cheaper, slightly softer.</summary>
    Taesd,
}

/// <summary>
/// One txt2img, img2img or inpainting request: what a user asks for, independent of any API shape.
/// Immutable; <see cref="GenerationPlan.Create"/> checks it once against a model and the limits.
/// </summary>
public sealed record GenerationRequest
{
    public string Prompt { get; init; } = "";
    public string NegativePrompt { get; init; } = "";
    public int Steps { get; init; } = 20;
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>Image size; null means the model's native size.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    /// <summary>Seed of the first image (−1: random, reported back); image i uses seed + i (with a variation strength, every image uses the seed).</summary>
    public long Seed { get; init; } = -1;

    /// <summary>Variation seed of the first image (A1111's <c>subseed</c>; −1: random, reported back); image i uses subseed + i.</summary>
    public long Subseed { get; init; } = -1;

    /// <summary>How far each image's noise moves from its seed's towards its subseed's (A1111's <c>subseed_strength</c>), 0 to 1.</summary>
    public double SubseedStrength { get; init; }

    /// <summary>Make the seed's noise as if for this image size and paste it centred (A1111's <c>seed_resize_from_w/h</c>); 0 or less on either side: off.</summary>
    public int SeedResizeFromWidth { get; init; }
    public int SeedResizeFromHeight { get; init; }

    /// <summary>Images to make (AUTOMATIC1111's batch size).</summary>
    public int Count { get; init; } = 1;

    /// <summary>Scheduler name (see SchedulerRegistry); null: the model's own.</summary>
    public string? Scheduler { get; init; }

    /// <summary>img2img source image; null for txt2img.</summary>
    public RgbImage? InitImage { get; init; }

    /// <summary>img2img: how much of the schedule is run, in (0, 1].</summary>
    public double Strength { get; init; } = 0.75;

    /// <summary>Inpainting: repaint the masked part of <see cref="InitImage"/> only; null repaints all of it (img2img).</summary>
    public InpaintingOptions? Inpainting { get; init; }

    /// <summary>img2img: the initial noise is multiplied by this (A1111's initial_noise_multiplier; 1 leaves it).</summary>
    public double InitialNoiseMultiplier { get; init; } = 1.0;

    /// <summary>txt2img: AUTOMATIC1111's hires fix (a second, img2img pass at a larger size); null: off.</summary>
    public HiresOptions? Hires { get; init; }

    public DecoderKind Decoder { get; init; } = DecoderKind.Vae;
    public NoiseGeneratorKind Rng { get; init; } = NoiseGeneratorKind.Torch;

    /// <summary>DDIM's eta (0: deterministic).</summary>
    public double Eta { get; init; }

    /// <summary>
    /// Clip skip (A1111's CLIP_stop_at_last_layers): 1 uses the text encoder's last layer; N takes
    /// the states N − 1 layers earlier, through the final layer norm. SD 2.x encoders ignore it, as in A1111.
    /// </summary>
    public int ClipSkip { get; init; } = 1;

    /// <summary>The largest clip skip any request may name (OpenCLIP-H has 24 layers); the model's own layer count is checked when the request is planned.</summary>
    public const int MaxClipSkip = 24;

    /// <summary>Seamless tiling: the UNet's and VAE's convolutions pad circularly, so the image tiles without seams.</summary>
    public bool Tiling { get; init; }

    /// <summary>Run classifier-free guidance's two halves as one UNet batch of 2 (else two calls).</summary>
    public bool CfgAsBatch { get; init; } = true;

    public bool IsImageToImage => InitImage is not null || ImagesReleased;

    // Set by WithoutImages: the request was img2img, its image (and mask) prepared and let go.
    private bool ImagesReleased { get; init; }

    /// <summary>
    /// This request without its uploaded image and inpainting mask, for keeping after preparation
    /// has turned them into latents (a queued or finished job must not pin a decoded upload); it
    /// still reads as img2img, so infotexts and results do not change.
    /// </summary>
    public GenerationRequest WithoutImages() => InitImage is null && Inpainting is null ? this : this with { InitImage = null, Inpainting = null, ImagesReleased = true };

    /// <summary>Guidance ≤ 1 needs no unconditional half (SD-Turbo, LCM).</summary>
    public bool UsesGuidance => GuidanceScale > 1.0;
}

/// <summary>Bounds on what one request may ask for (servers tighten them).</summary>
public sealed record GenerationLimits
{
    public int MaxSteps { get; init; } = 150;
    public int MaxWidth { get; init; } = 2048;
    public int MaxHeight { get; init; } = 2048;
    public int MaxCount { get; init; } = 16;
    public int MaxPromptCharacters { get; init; } = 10_000;
    public double MaxGuidanceScale { get; init; } = 50;

    public static GenerationLimits Default { get; } = new();
}
