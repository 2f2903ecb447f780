using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// Hires fix between its passes, as AUTOMATIC1111 does it: the first pass's latents become the
/// second pass's clean latents. A latent mode interpolates the latents to the upscale size; an
/// image upscaler decodes them (with the request's decoder), resizes the image as A1111's
/// <c>resize_image</c> does and encodes it with the VAE encoder, sampling the encoder's
/// distribution with the seed's first torch (CPU) noise — where A1111's global generator stands
/// after seeding that image's noise. Then the overhang of a resize with another aspect ratio is
/// cropped from the centre. Both drivers run it; it owns nothing.
/// </summary>
public sealed class HiresUpscaling(ModelFolder model, LatentDecoders decoders)
{
    public float[] Upscale(ReadOnlySpan<float> latents, GenerationPlan plan, long seed, CancellationToken cancellation)
    {
        var hires = plan.Hires ?? throw new ArgumentException("The plan has no hires fix.", nameof(plan));
        int channels = plan.LatentChannels, f = plan.VaeScaleFactor;
        int height = hires.UpscaleHeight / f, width = hires.UpscaleWidth / f;
        float[] upscaled;
        if (hires.Upscaler.Latent is { } mode)
            upscaled = TorchInterpolation.Resize(latents, channels, plan.LatentHeight, plan.LatentWidth, height, width, mode, hires.Upscaler.Antialias);
        else
        {
            // Seamless tiling: A1111's circular padding covers the VAE between the passes too.
            bool tiling = plan.Request.Tiling;
            var image = decoders.For(plan.Request.Decoder, tiling).DecodeImage(latents, channels, plan.LatentHeight, plan.LatentWidth, cancellation);
            var resized = A1111Upscaling.Resize(image, hires.UpscaleWidth, hires.UpscaleHeight, hires.Upscaler.Image!.Value);
            var encoded = (tiling ? model.VaeEncoder!.Circular : model.VaeEncoder!).EncodeImage(resized, cancellation);
            upscaled = encoded.Sample(NoiseGenerators.Create(NoiseGeneratorKind.Torch, (ulong)seed));
        }
        return CropCentre(upscaled, channels, height, width, hires.TruncateY, hires.TruncateX);
    }

    // A1111: samples[:, :, ty//2 : h - (ty+1)//2, tx//2 : w - (tx+1)//2].
    internal static float[] CropCentre(float[] latents, int channels, int height, int width, int truncateY, int truncateX)
    {
        if (truncateX == 0 && truncateY == 0) return latents;
        int h = height - truncateY, w = width - truncateX, top = truncateY / 2, left = truncateX / 2;
        var cropped = new float[channels * h * w];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < h; y++)
                latents.AsSpan((c * height + top + y) * width + left, w).CopyTo(cropped.AsSpan((c * h + y) * w, w));
        return cropped;
    }
}
