using System.Globalization;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// Hires fix as planned, the way AUTOMATIC1111 computes it: the upscale target (the first pass's
/// size × <see cref="HiresOptions.Scale"/>, or the resize size with the first pass's aspect ratio,
/// the overhang cropped from the latents' centre afterwards), the upscaler, and the second pass:
/// img2img at the target size that runs exactly <see cref="Steps"/> steps of a schedule of
/// ⌊steps / min(strength, 0.999)⌋, from the upscaled latents noised with the seed's noise.
/// </summary>
public sealed record HiresPass
{
    public required HiresUpscaler Upscaler { get; init; }

    /// <summary>The size the upscaler produces (A1111's <c>hr_upscale_to_x/y</c>).</summary>
    public required int UpscaleWidth { get; init; }
    public required int UpscaleHeight { get; init; }

    /// <summary>Latent columns and rows cropped from the upscaled latents (half each side, the odd one at the end).</summary>
    public required int TruncateX { get; init; }
    public required int TruncateY { get; init; }

    /// <summary>The second pass's (and the output's) size.</summary>
    public required int Width { get; init; }
    public required int Height { get; init; }

    /// <summary>Steps the second pass runs, and its denoising strength.</summary>
    public required int Steps { get; init; }
    public required double Strength { get; init; }

    public required string SchedulerName { get; init; }
    public required string Prompt { get; init; }
    public required string NegativePrompt { get; init; }

    /// <summary>Whether the second pass has its own prompts (encoded separately).</summary>
    public bool HasOwnPrompts { get; init; }

    public required DenoisingPass Pass { get; init; }

    internal static HiresPass Create(GenerationRequest r, int width, int height, ModelFolder model, GenerationLimits limits)
    {
        var h = r.Hires!;
        if (r.IsImageToImage)
            throw new AsyncDiffusionException("hires fix is for txt2img: img2img already denoises an image at the size asked for; leave out either hires fix or the init image.");
        var upscaler = h.Upscaler is null ? HiresUpscaler.Default : HiresUpscaler.Find(h.Upscaler);
        if (upscaler.NeedsVaeEncoder && model.VaeEncoder is null)
            throw new AsyncDiffusionException($"hires upscaler '{upscaler.Name}' re-encodes the upscaled image, but model '{model.Name}' has no vae_encoder/; use a latent upscaler ({string.Join(", ", HiresUpscaler.LatentModes.Select(u => u.Name))}).");

        int f = model.VaeScaleFactor;
        int toX, toY, truncateX = 0, truncateY = 0;
        string how;
        if (h.ResizeWidth < 0 || h.ResizeHeight < 0)
            throw new AsyncDiffusionException($"hires resize is {h.ResizeWidth}x{h.ResizeHeight}; expected sizes of 0 or more (0: follow the other side; both 0: use the scale).");
        if (h.ResizeWidth == 0 && h.ResizeHeight == 0)
        {
            if (!(h.Scale > 0 && double.IsFinite(h.Scale)))
                throw new AsyncDiffusionException($"hires scale is {h.Scale}; expected a factor above 0, e.g. 2.");
            toX = (int)(width * h.Scale);
            toY = (int)(height * h.Scale);
            how = $"{width}x{height} × hires scale {h.Scale.ToString(CultureInfo.InvariantCulture)}";
        }
        else
        {
            how = $"hires resize {h.ResizeWidth}x{h.ResizeHeight} from {width}x{height}";
            if (h.ResizeHeight == 0 || (h.ResizeWidth != 0 && (double)width / height < (double)h.ResizeWidth / h.ResizeHeight))
            {
                toX = h.ResizeWidth;
                toY = (int)((long)h.ResizeWidth * height / width);
            }
            else
            {
                toX = (int)((long)h.ResizeHeight * width / height);
                toY = h.ResizeHeight;
            }
            if (h.ResizeWidth != 0 && h.ResizeHeight != 0)
            {
                truncateX = (toX - h.ResizeWidth) / f;
                truncateY = (toY - h.ResizeHeight) / f;
            }
        }
        // The upscale may overhang the limits by the crop of a resize with another aspect ratio, within bounds.
        if (toX > 2 * limits.MaxWidth || toY > 2 * limits.MaxHeight || toX < 1 || toY < 1)
            throw new AsyncDiffusionException($"hires fix would upscale to {toX}x{toY} ({how}); expected at most {2 * limits.MaxWidth}x{2 * limits.MaxHeight} before cropping and {limits.MaxWidth}x{limits.MaxHeight} after.");
        if (upscaler.NeedsVaeEncoder && (toX % f != 0 || toY % f != 0))
            throw new AsyncDiffusionException($"hires fix upscales the image to {toX}x{toY} ({how}); the VAE encoder needs multiples of {f}; pick a scale or resize that gives them.");
        int finalWidth = (toX / f - truncateX) * f, finalHeight = (toY / f - truncateY) * f;
        GenerationPlan.CheckSize($"hires width ({how})", finalWidth, limits.MaxWidth, model);
        GenerationPlan.CheckSize($"hires height ({how})", finalHeight, limits.MaxHeight, model);

        int steps = h.Steps == 0 ? r.Steps : h.Steps;
        if (steps < 1 || steps > limits.MaxSteps)
            throw new AsyncDiffusionException($"hires steps is {h.Steps}; expected 0 (the request's steps) or 1 to {limits.MaxSteps}.");
        if (!(h.DenoisingStrength > 0 && h.DenoisingStrength <= 1))
            throw new AsyncDiffusionException($"hires denoising strength is {h.DenoisingStrength}; expected a value in (0, 1].");
        string? schedulerName = h.Scheduler ?? r.Scheduler;
        var scheduler = GenerationPlan.CreateScheduler(schedulerName, r.Eta, model);
        int start;
        try
        {
            start = scheduler.SetTimestepsForFixedSteps(steps, h.DenoisingStrength);
        }
        catch (AsyncDiffusionException e)
        {
            throw new AsyncDiffusionException($"hires fix: {steps} steps at denoising strength {h.DenoisingStrength.ToString(CultureInfo.InvariantCulture)} need a schedule of {(int)(steps / Math.Min(h.DenoisingStrength, 0.999))} steps: {e.Message}");
        }

        string prompt = string.IsNullOrEmpty(h.Prompt) ? r.Prompt : h.Prompt;
        string negative = string.IsNullOrEmpty(h.NegativePrompt) ? r.NegativePrompt ?? "" : h.NegativePrompt;
        GenerationPlan.CheckPromptLength(prompt, limits, "hires prompt");
        GenerationPlan.CheckPromptLength(negative, limits, "hires negative prompt");
        return new HiresPass
        {
            Upscaler = upscaler,
            UpscaleWidth = toX,
            UpscaleHeight = toY,
            TruncateX = truncateX,
            TruncateY = truncateY,
            Width = finalWidth,
            Height = finalHeight,
            Steps = steps,
            Strength = h.DenoisingStrength,
            SchedulerName = GenerationPlan.SchedulerNameOf(schedulerName, scheduler),
            Prompt = prompt,
            NegativePrompt = negative,
            HasOwnPrompts = prompt != r.Prompt || negative != (r.NegativePrompt ?? ""),
            Pass = new DenoisingPass(scheduler, start, finalWidth / f, finalHeight / f),
        };
    }
}
