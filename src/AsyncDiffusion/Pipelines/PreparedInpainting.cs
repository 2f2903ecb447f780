using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// A request's mask and init image processed once, for all its images, as AUTOMATIC1111
/// processes them: the mask inverted and blurred, the image (or, "only masked", the crop around
/// the mask) at the generation size with the masked content filled, the mask at latent
/// resolution, and the overlay that brings the unmasked pixels back after decoding.
/// </summary>
public sealed class PreparedInpainting
{
    /// <summary>What the VAE encodes: the generation-size image, masked content filled.</summary>
    public required RgbImage Source { get; init; }

    /// <summary>The mask at the generation size (blurred; 255 = repaint).</summary>
    public required GreyImage Mask { get; init; }

    /// <summary>The mask at latent resolution, 1 = repaint (rounded unless the request says not to).</summary>
    public required float[] LatentMask { get; init; }

    public required MaskedContent Fill { get; init; }

    /// <summary>The original with alpha 255 − mask, composited over the decoded image.</summary>
    public required RgbaImage Overlay { get; init; }

    /// <summary>"Only masked": where the generation-size image goes back in the original; null when it is the whole image.</summary>
    public (int X, int Y, int Width, int Height)? PasteRegion { get; init; }

    /// <summary>The infotext fields A1111 writes for these settings, in its order.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Infotext { get; init; }

    /// <summary>The decoded generation-size image → the final image (unmasked pixels exactly the original's).</summary>
    public RgbImage Compose(RgbImage decoded) => InpaintOverlay.Apply(decoded, PasteRegion, Overlay);

    /// <summary>
    /// Processes <paramref name="options"/> for <paramref name="init"/> and a generation of
    /// <paramref name="width"/>×<paramref name="height"/> whose latents are <paramref name="vaeFactor"/> times smaller.
    /// </summary>
    public static PreparedInpainting Prepare(InpaintingOptions options, RgbImage init, int width, int height, int vaeFactor)
    {
        var info = new List<KeyValuePair<string, string>>();
        var mask = options.Mask;
        if (options.Invert)
        {
            mask = mask.Inverted();
            info.Add(new("Mask mode", "Inpaint not masked"));
        }
        mask = MaskBlur.Apply(mask, options.BlurX, options.BlurY);
        if (options.BlurX == options.BlurY && options.BlurX > 0) info.Add(new("Mask blur", options.BlurX.ToString()));

        GreyImage processing;
        RgbImage source;
        RgbaImage overlay;
        (int, int, int, int)? paste = null;
        // "Only masked" crops around the mask; a mask with nothing left to paint falls back to the whole image (and so returns it unchanged).
        var aligned = options.OnlyMasked && (mask.Width != init.Width || mask.Height != init.Height)
            ? A1111ImageResize.Resize(mask, init.Width, init.Height, ResizeMode.CropAndResize)
            : mask;
        if (options.OnlyMasked && aligned.BoundingBox() is { } box)
        {
            var crop = MaskCropRegion.Expand(MaskCropRegion.Pad(box, options.Padding, aligned.Width, aligned.Height), width, height, aligned.Width, aligned.Height);
            processing = A1111ImageResize.Resize(CropOf(aligned, crop), width, height, ResizeMode.ResizeAndFill);
            overlay = InpaintOverlay.Create(init, aligned);
            source = A1111ImageResize.Resize(CropOf(init, crop), width, height, ResizeMode.ResizeAndFill);
            paste = (crop.Left, crop.Top, crop.Right - crop.Left, crop.Bottom - crop.Top);
            info.Add(new("Inpaint area", "Only masked"));
            info.Add(new("Masked area padding", options.Padding.ToString()));
        }
        else
        {
            processing = A1111ImageResize.Resize(mask, width, height, ResizeMode.CropAndResize);
            // A1111 doubles the mask for the overlay, so the blur's inner half is fully repainted.
            var forOverlay = GreyImage.Create(width, height);
            for (int i = 0; i < forOverlay.Pixels.Length; i++) forOverlay.Pixels[i] = (byte)Math.Min(255, processing.Pixels[i] * 2);
            source = ImageCodec.ResizeAndCrop(init, width, height);
            overlay = InpaintOverlay.Create(source, forOverlay);
        }
        if (options.Fill != MaskedContent.Original) source = MaskedContentFill.Apply(source, processing);
        if (options.Fill != MaskedContent.Original)
            info.Add(new("Masked content", options.Fill switch { MaskedContent.Fill => "fill", MaskedContent.LatentNoise => "latent noise", _ => "latent nothing" }));

        return new PreparedInpainting
        {
            Source = source,
            Mask = processing,
            LatentMask = LatentMaskOf(processing, width / vaeFactor, height / vaeFactor, options.RoundMask),
            Fill = options.Fill,
            Overlay = overlay,
            PasteRegion = paste,
            Infotext = info,
        };
    }

    // A1111: Pillow's default (bicubic) resize to latent size, /255, rounded with mask_round.
    private static float[] LatentMaskOf(GreyImage mask, int width, int height, bool round)
    {
        var small = PillowResampling.Resize(mask, width, height, ResampleFilter.Bicubic);
        var result = new float[width * height];
        for (int i = 0; i < result.Length; i++)
        {
            float v = small.Pixels[i] / 255f;
            result[i] = round ? MathF.Round(v, MidpointRounding.ToEven) : v;
        }
        return result;
    }

    private static GreyImage CropOf(GreyImage image, (int Left, int Top, int Right, int Bottom) r) =>
        new(r.Right - r.Left, r.Bottom - r.Top, A1111ImageResize.Crop(image.Pixels, image.Width, 1, r));

    private static RgbImage CropOf(RgbImage image, (int Left, int Top, int Right, int Bottom) r) =>
        new(r.Right - r.Left, r.Bottom - r.Top, A1111ImageResize.Crop(image.Pixels, image.Width, 3, r));
}
