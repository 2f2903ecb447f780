using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// One of the hires-fix upscalers, by AUTOMATIC1111's name: a latent mode (the first pass's
/// latents interpolated as A1111's <c>latent_upscale_modes</c> do) or an image upscaler (decode,
/// resize the image, encode with the VAE encoder). Model-based upscalers (ESRGAN, SwinIR, …)
/// are not available.
/// </summary>
public sealed record HiresUpscaler(string Name, InterpolationMode? Latent, bool Antialias, ImageUpscaler? Image)
{
    /// <summary>A1111's default when a request names none.</summary>
    public static HiresUpscaler Default => All[0];

    public static IReadOnlyList<HiresUpscaler> All { get; } =
    [
        new("Latent", InterpolationMode.Bilinear, false, null),
        new("Latent (antialiased)", InterpolationMode.Bilinear, true, null),
        new("Latent (bicubic)", InterpolationMode.Bicubic, false, null),
        new("Latent (bicubic antialiased)", InterpolationMode.Bicubic, true, null),
        new("Latent (nearest)", InterpolationMode.Nearest, false, null),
        new("Latent (nearest-exact)", InterpolationMode.NearestExact, false, null),
        new("None", null, false, ImageUpscaler.None),
        new("Lanczos", null, false, ImageUpscaler.Lanczos),
        new("Nearest", null, false, ImageUpscaler.Nearest),
    ];

    public static IEnumerable<HiresUpscaler> LatentModes => All.Where(u => u.Latent is not null);
    public static IEnumerable<HiresUpscaler> ImageUpscalers => All.Where(u => u.Image is not null);

    public bool NeedsVaeEncoder => Image is not null;

    /// <summary>The upscaler with this name (case-insensitive); an unknown name is an error listing the available ones.</summary>
    public static HiresUpscaler Find(string name) =>
        All.FirstOrDefault(u => string.Equals(u.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new AsyncDiffusionException($"hires upscaler '{name}' is not available; available: {string.Join(", ", All.Select(u => u.Name))} (model-based upscalers such as ESRGAN are not supported).");
}
