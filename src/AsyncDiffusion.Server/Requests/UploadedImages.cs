using System.Buffers;
using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Text.Json;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Server.Requests;

/// <summary>Client-supplied images: base64 or data URIs, decoded with a pixel limit; never fetched from URLs.</summary>
public static class UploadedImages
{
    /// <summary>
    /// An image sent as a JSON string: decoded straight from the body's UTF-8 bytes when it has
    /// no escapes (a 20 MB upload is not first copied into a 40 MB string), else as text.
    /// </summary>
    public static RgbImage FromBase64(JsonElement value, string field, long maxPixels) => Decode(BytesFromBase64(value, field), field, maxPixels);

    /// <summary>Like <see cref="FromBase64"/>, keeping the alpha channel (masks).</summary>
    public static RgbaImage RgbaFromBase64(JsonElement value, string field, long maxPixels) => DecodeRgba(BytesFromBase64(value, field), field, maxPixels);

    /// <summary>A JSON string holding only whitespace (A1111 clients send <c>"mask": ""</c> for no mask), read without copying a long one.</summary>
    public static bool IsBlank(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String) return false;
        var raw = Unquoted(value);
        return raw.IndexOf((byte)'\\') >= 0 ? string.IsNullOrWhiteSpace(value.GetString()) : raw.Trim(" \t\r\n"u8).Length == 0;
    }

    private static byte[] BytesFromBase64(JsonElement value, string field)
    {
        if (value.ValueKind != JsonValueKind.String) throw new BadRequestException(field, $"{field} must be a base64 string or a data URI");
        var raw = Unquoted(value);
        if (raw.IndexOf((byte)'\\') >= 0) return BytesFromBase64(value.GetString()!, field);
        var text = raw.Trim((byte)' ');
        if (text.StartsWith("data:"u8) || text.StartsWith("DATA:"u8))
        {
            int comma = text.IndexOf((byte)',');
            if (comma >= 0) text = text[(comma + 1)..];
        }
        int padding = text.EndsWith("=="u8) ? 2 : text.EndsWith("="u8) ? 1 : 0;
        if (text.Length % 4 == 0 && text.Length > 0)
        {
            var bytes = new byte[text.Length / 4 * 3 - padding];
            if (Base64.DecodeFromUtf8(text, bytes, out _, out int written) == OperationStatus.Done && written == bytes.Length)
                return bytes;
        }
        return BytesFromBase64(value.GetString()!, field); // URLs, whitespace, bad base64: the text path says what is wrong
    }

    private static ReadOnlySpan<byte> Unquoted(JsonElement value)
    {
        var raw = JsonMarshal.GetRawUtf8Value(value);
        return raw.Length >= 2 && raw[0] == (byte)'"' ? raw[1..^1] : raw;
    }

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
