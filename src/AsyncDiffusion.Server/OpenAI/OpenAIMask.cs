using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.OpenAI;

/// <summary>
/// The <c>mask</c> of an OpenAI image edit: a PNG the size of the image whose fully transparent
/// pixels mark where to edit. Those pixels are repainted from scratch (strength 1, no blur); every
/// other pixel comes back unchanged.
/// </summary>
internal static class OpenAIMask
{
    private static readonly byte[] PngSignature = [137, 80, 78, 71, 13, 10, 26, 10];

    public static async Task<InpaintingOptions> ReadAsync(IFormFile file, RgbImage image, ServerOptions options)
    {
        var bytes = await OpenAIEndpoints.BytesOf(file);
        if (!bytes.AsSpan().StartsWith(PngSignature))
            throw new BadRequestException("mask", "mask must be a PNG whose fully transparent pixels mark where to edit");
        var rgba = UploadedImages.DecodeRgba(bytes, "mask", options.MaxImagePixels);
        if (rgba.Width != image.Width || rgba.Height != image.Height)
            throw new BadRequestException("mask", $"mask is {rgba.Width}x{rgba.Height} but image is {image.Width}x{image.Height}; they must have the same dimensions");
        return new InpaintingOptions(InpaintMasks.FromTransparency(rgba)) { BlurX = 0, BlurY = 0 };
    }
}
