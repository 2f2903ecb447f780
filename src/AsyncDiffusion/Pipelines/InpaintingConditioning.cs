using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// What an inpainting UNet takes besides the latents, for one request: the mask at latent
/// resolution (1 = repaint) and the VAE encoding of the masked image (masked pixels grey, i.e. 0
/// in [-1, 1]), as diffusers and AUTOMATIC1111 build them. Without a mask (txt2img, img2img) the
/// whole image is "masked": a mask of ones and an all-grey image, as A1111 does.
/// </summary>
public sealed class InpaintingConditioning
{
    private InpaintingConditioning(float[] mask, InitImageLatents maskedImage)
    {
        Mask = mask;
        MaskedImage = maskedImage;
    }

    /// <summary>[h, w], 1 = repaint.</summary>
    public float[] Mask { get; }

    /// <summary>The masked image's latent distribution (sampled per image with its generator).</summary>
    public InitImageLatents MaskedImage { get; }

    /// <param name="encoder">The model's VAE encoder.</param>
    /// <param name="plan">The request's plan (size, latent size).</param>
    /// <param name="inpainting">The prepared mask and image; null for a request without a mask.</param>
    /// <param name="cancellation">Cancels the encoding.</param>
    public static InpaintingConditioning Prepare(VaeEncoder encoder, GenerationPlan plan, PreparedInpainting? inpainting, CancellationToken cancellation) =>
        Prepare(encoder, plan.Width, plan.Height, plan.LatentWidth, plan.LatentHeight, inpainting, plan.Request.Inpainting?.RoundMask ?? false, cancellation);

    /// <summary>The conditioning without a mask (the whole image repainted) at another size: hires fix's second pass.</summary>
    public static InpaintingConditioning WholeImage(VaeEncoder encoder, int width, int height, int latentWidth, int latentHeight, CancellationToken cancellation) =>
        Prepare(encoder, width, height, latentWidth, latentHeight, null, false, cancellation);

    private static InpaintingConditioning Prepare(VaeEncoder encoder, int width, int height, int lw, int lh, PreparedInpainting? inpainting, bool round,
        CancellationToken cancellation)
    {
        int plane = width * height;
        var masked = new float[3 * plane];
        var full = new float[plane];
        if (inpainting is null) Array.Fill(full, 1f);
        else
        {
            LatentImageConversion.ToTensor(inpainting.Source, masked);
            for (int i = 0; i < plane; i++)
            {
                float m = inpainting.Mask.Pixels[i] / 255f;
                full[i] = round ? MathF.Round(m, MidpointRounding.ToEven) : m;
                for (int c = 0; c < 3; c++) masked[c * plane + i] *= 1 - full[i];
            }
        }
        // Nearest-neighbour to latent size, as torch's interpolate does: source index ⌊i · in / out⌋.
        var mask = new float[lw * lh];
        for (int y = 0; y < lh; y++)
            for (int x = 0; x < lw; x++)
                mask[y * lw + x] = full[(int)Math.Floor(y * ((double)height / lh)) * width + (int)Math.Floor(x * ((double)width / lw))];
        return new InpaintingConditioning(mask, encoder.EncodeTensor(masked, width, height, cancellation));
    }
}
