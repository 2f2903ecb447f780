using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Pipelines;

/// <summary>What the masked area starts from (AUTOMATIC1111's inpainting_fill 0–3).</summary>
public enum MaskedContent
{
    /// <summary>The colours around the mask, blurred into it.</summary>
    Fill = 0,
    /// <summary>The init image as it is.</summary>
    Original = 1,
    /// <summary>The seed's noise in latent space.</summary>
    LatentNoise = 2,
    /// <summary>Zero latents.</summary>
    LatentNothing = 3,
}

/// <summary>
/// Inpainting: which part of the init image to repaint and how, as AUTOMATIC1111 defines it.
/// Defaults are A1111's web UI defaults.
/// </summary>
public sealed record InpaintingOptions(GreyImage Mask)
{
    /// <summary>Gaussian blur of the mask along x and y, in pixels of the mask (0: none).</summary>
    public int BlurX { get; init; } = 4;
    public int BlurY { get; init; } = 4;

    public MaskedContent Fill { get; init; } = MaskedContent.Original;

    /// <summary>"Only masked": generate the masked region plus <see cref="Padding"/> at the full generation size, then paste it back.</summary>
    public bool OnlyMasked { get; init; }

    /// <summary>Pixels added around the masked region for <see cref="OnlyMasked"/>.</summary>
    public int Padding { get; init; } = 32;

    /// <summary>Repaint what is not masked instead.</summary>
    public bool Invert { get; init; }

    /// <summary>Round the mask to 0/1 where it steers the latents (A1111's mask_round).</summary>
    public bool RoundMask { get; init; } = true;

    /// <summary>fill, original, latent noise, latent nothing (spaces, dashes or underscores); null for anything else.</summary>
    public static MaskedContent? ParseMaskedContent(string name) => name.Trim().ToLowerInvariant().Replace('-', ' ').Replace('_', ' ') switch
    {
        "fill" => MaskedContent.Fill,
        "original" => MaskedContent.Original,
        "latent noise" => MaskedContent.LatentNoise,
        "latent nothing" => MaskedContent.LatentNothing,
        _ => null,
    };
}
