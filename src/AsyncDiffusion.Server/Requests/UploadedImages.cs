using AsyncDiffusion.Imaging;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Requests;

/// <summary>Client-supplied images: base64 or data URIs, decoded with a pixel limit; never fetched from URLs.</summary>
public static class UploadedImages
{
    public static RgbImage FromBase64(string text, string field, long maxPixels) => Decode(BytesFromBase64(text, field), field, maxPixels);

    /// <summary>Like <see cref="FromBase64"/>, keeping the alpha channel (masks).</summary>
    public static RgbaImage RgbaFromBase64(string text, string field, long maxPixels) => DecodeRgba(BytesFromBase64(text, field), field, maxPixels);

    private static byte[] BytesFromBase64(string text, string field)
    {
        text = text.Trim();
        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            throw new BadRequestException(field, $"{field} is a URL; this server does not fetch images from URLs, send the image as base64 or a data URI");
        int comma = text.StartsWith("data:", StringComparison.OrdinalIgnoreCase) ? text.IndexOf(',') : -1;
        if (comma >= 0) text = text[(comma + 1)..];
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw new BadRequestException(field, $"{field} is not valid base64; expected a base64 PNG/JPEG/WebP or a data URI");
        }
    }

    public static RgbImage Decode(byte[] bytes, string field, long maxPixels)
    {
        try
        {
            return ImageCodec.Decode(bytes, field, maxPixels);
        }
        catch (AsyncDiffusionException e)
        {
            throw new BadRequestException(field, e.Message);
        }
    }

    public static RgbaImage DecodeRgba(byte[] bytes, string field, long maxPixels)
    {
        try
        {
            return ImageCodec.DecodeRgba(bytes, field, maxPixels);
        }
        catch (AsyncDiffusionException e)
        {
            throw new BadRequestException(field, e.Message);
        }
    }

    public static string ContentType(ImageFormat format) => format switch
    {
        ImageFormat.Jpeg => "image/jpeg",
        ImageFormat.Webp => "image/webp",
        _ => "image/png",
    };
}
