using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>Latents → RGB with the model's VAE (latents ÷ scaling factor, output in [-1, 1]) or TAESD (latents as they are, output in [0, 1]).</summary>
public static class ImageDecoding
{
    public static RgbImage Decode(ModelFolder model, TaesdDecoder? taesd, ReadOnlySpan<float> latents, int channels, int height, int width, CancellationToken cancellation)
    {
        long[] shape = [1, channels, height, width];
        if (taesd is not null)
        {
            var (image, s) = taesd.Decode(latents, shape, cancellation);
            return LatentImageConversion.ToImage(image, 0, (int)s[3], (int)s[2], zeroToOne: true);
        }
        var scaled = new float[latents.Length];
        float factor = (float)model.ScalingFactor;
        for (int i = 0; i < scaled.Length; i++) scaled[i] = latents[i] / factor;
        var (pixels, outShape) = model.VaeDecoder.Decode(scaled, shape, cancellation);
        return LatentImageConversion.ToImage(pixels, 0, (int)outShape[3], (int)outShape[2]);
    }

    /// <summary>The init image resized to the request's size and run through the VAE encoder.</summary>
    public static InitImageLatents EncodeInitImage(ModelFolder model, RgbImage image, int width, int height, CancellationToken cancellation)
    {
        var resized = ImageCodec.ResizeAndCrop(image, width, height);
        var tensor = new float[3 * width * height];
        LatentImageConversion.ToTensor(resized, tensor);
        var encoder = model.VaeEncoder!;
        var (values, _) = encoder.Encode(tensor, [1, 3, height, width], cancellation);
        return new InitImageLatents(values, encoder.Output);
    }
}
