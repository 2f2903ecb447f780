using System.Text;
using SkiaSharp;

namespace AsyncDiffusion.Imaging;

public enum ImageFormat { Png, Jpeg, Webp }

/// <summary>
/// Decodes untrusted image bytes (PNG, JPEG, WebP, BMP, GIF) with SkiaSharp under a pixel limit
/// checked before any pixel is decoded, refusing truncated or corrupt data, and encodes results. PNGs carry the generation
/// parameters in a <c>parameters</c> text chunk, as AUTOMATIC1111 writes them.
/// </summary>
public static class ImageCodec
{
    /// <summary>Default decode limit: 40 megapixels.</summary>
    public const long DefaultMaxPixels = 40_000_000;

    public static RgbImage Decode(byte[] bytes, string name, long maxPixels = DefaultMaxPixels) => OnWhite(DecodeRgba(bytes, name, maxPixels));

    /// <summary>Decodes keeping the alpha channel (straight alpha; opaque formats give 255): for masks.</summary>
    public static RgbaImage DecodeRgba(byte[] bytes, string name, long maxPixels = DefaultMaxPixels)
    {
        if (bytes.Length == 0) throw new AsyncDiffusionException($"'{name}' is empty; expected a PNG, JPEG, WebP, BMP or GIF.");
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data)
            ?? throw new AsyncDiffusionException($"'{name}' is not a readable image; expected PNG, JPEG, WebP, BMP or GIF.");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > maxPixels)
            throw new AsyncDiffusionException($"'{name}' is {info.Width}×{info.Height} pixels; at most {maxPixels:N0} pixels are accepted.");
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(target);
        var result = codec.GetPixels(target, bitmap.GetPixels());
        // A header alone (or a cut-off upload) decodes as "incomplete" with the rest left blank: that is not the image the client meant.
        if (result == SKCodecResult.IncompleteInput)
            throw new AsyncDiffusionException($"'{name}' is truncated: its header declares {info.Width}×{info.Height} pixels but the image data ends early ({bytes.Length:N0} bytes); expected a complete PNG, JPEG, WebP, BMP or GIF.");
        if (result != SKCodecResult.Success)
            throw new AsyncDiffusionException($"'{name}' could not be decoded ({result}); expected a valid PNG, JPEG, WebP, BMP or GIF.");
        var image = RgbaImage.Create(info.Width, info.Height);
        var span = bitmap.GetPixelSpan();
        for (int y = 0; y < info.Height; y++)
            span.Slice(y * bitmap.RowBytes, info.Width * 4).CopyTo(image.Pixels.AsSpan(y * info.Width * 4));
        return image;
    }

    public static RgbImage Decode(string path, long maxPixels = DefaultMaxPixels) => Decode(ReadFile(path), path, maxPixels);

    public static RgbaImage DecodeRgba(string path, long maxPixels = DefaultMaxPixels) => DecodeRgba(ReadFile(path), path, maxPixels);

    private static byte[] ReadFile(string path) =>
        File.Exists(path) ? File.ReadAllBytes(path) : throw new AsyncDiffusionException($"Image '{path}' not found.");

    /// <summary>
    /// Scales the image to cover <paramref name="width"/>×<paramref name="height"/> keeping its
    /// aspect ratio, then crops the centre: AUTOMATIC1111's "crop and resize", with Pillow's Lanczos.
    /// Only the part of the scaled image that survives the crop is computed (exactly the bytes the
    /// full scale would have there), so time and memory are bounded by the source and the result
    /// whatever the aspect ratio: scaling first would make a 1,000,000×16 strip covering 64×64
    /// into a 4,000,000×64 intermediate.
    /// </summary>
    public static RgbImage ResizeAndCrop(RgbImage image, int width, int height) =>
        image.Width == width && image.Height == height ? image : A1111ImageResize.Resize(image, width, height, ResizeMode.CropAndResize);

    public static byte[] Encode(RgbImage image, ImageFormat format, string? parameters = null, int quality = 90)
    {
        using var bitmap = ToBitmap(image);
        using var encoded = bitmap.Encode(format switch
        {
            ImageFormat.Jpeg => SKEncodedImageFormat.Jpeg,
            ImageFormat.Webp => SKEncodedImageFormat.Webp,
            _ => SKEncodedImageFormat.Png,
        }, quality) ?? throw new InvalidOperationException($"SkiaSharp could not encode {format}.");
        var bytes = encoded.ToArray();
        return format == ImageFormat.Png && parameters is not null ? PngText.Insert(bytes, "parameters", parameters) : bytes;
    }

    public static ImageFormat ParseFormat(string name) => name.Trim().ToLowerInvariant() switch
    {
        "png" => ImageFormat.Png,
        "jpg" or "jpeg" => ImageFormat.Jpeg,
        "webp" => ImageFormat.Webp,
        _ => throw new AsyncDiffusionException($"Unknown image format '{name}'; expected png, jpeg or webp."),
    };

    public static string Extension(ImageFormat format) => format switch { ImageFormat.Jpeg => ".jpg", ImageFormat.Webp => ".webp", _ => ".png" };

    private static SKBitmap ToBitmap(RgbImage image)
    {
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var span = bitmap.GetPixelSpan();
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int s = (y * image.Width + x) * 3, d = y * bitmap.RowBytes + x * 4;
                span[d] = image.Pixels[s];
                span[d + 1] = image.Pixels[s + 1];
                span[d + 2] = image.Pixels[s + 2];
                span[d + 3] = 255;
            }
        return bitmap;
    }

    // Alpha is composited onto white, as a person would see a transparent upload.
    private static RgbImage OnWhite(RgbaImage rgba)
    {
        var image = RgbImage.Create(rgba.Width, rgba.Height);
        for (int i = 0; i < rgba.Width * rgba.Height; i++)
        {
            int a = rgba.Pixels[i * 4 + 3];
            for (int c = 0; c < 3; c++) image.Pixels[i * 3 + c] = (byte)((rgba.Pixels[i * 4 + c] * a + 255 * (255 - a) + 127) / 255);
        }
        return image;
    }
}

/// <summary>Reads and writes PNG text chunks (tEXt for Latin-1 text, iTXt for anything else, as PIL does).</summary>
public static class PngText
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Inserts a text chunk right after IHDR.</summary>
    public static byte[] Insert(byte[] png, string keyword, string text)
    {
        if (png.Length < 33 || !png.AsSpan(0, 8).SequenceEqual(Signature)) throw new ArgumentException("Not a PNG.", nameof(png));
        bool latin1 = text.All(c => c <= 0xFF);
        byte[] data = latin1
            ? [.. Encoding.Latin1.GetBytes(keyword), 0, .. Encoding.Latin1.GetBytes(text)]
            : [.. Encoding.Latin1.GetBytes(keyword), 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(text)];
        var chunk = Chunk(latin1 ? "tEXt" : "iTXt", data);
        int afterHeader = 8 + 25; // signature + IHDR (4 length + 4 type + 13 data + 4 crc)
        return [.. png.AsSpan(0, afterHeader), .. chunk, .. png.AsSpan(afterHeader)];
    }

    /// <summary>All tEXt/iTXt chunks of a PNG, keyword → text; what follows a broken chunk is ignored (see <see cref="ReadChecked"/>).</summary>
    public static Dictionary<string, string> Read(byte[] png) => Read(png, null);

    /// <summary>
    /// Like <see cref="Read(byte[])"/>, but bytes that are not a PNG, or a chunk whose declared length
    /// runs past the end of the data, are an <see cref="AsyncDiffusionException"/> naming <paramref name="name"/>.
    /// </summary>
    public static Dictionary<string, string> ReadChecked(byte[] png, string name) => Read(png, name);

    private static Dictionary<string, string> Read(byte[] png, string? strictName)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(Signature))
            return strictName is null ? result : throw new AsyncDiffusionException($"'{strictName}' is not a PNG (it does not start with the PNG signature).");
        int pos = 8;
        while (pos + 12 <= png.Length)
        {
            // Lengths are unsigned 31-bit values; in long arithmetic a length near 2^31 cannot wrap past the bounds check.
            long length = ((long)png[pos] << 24) | ((long)png[pos + 1] << 16) | ((long)png[pos + 2] << 8) | png[pos + 3];
            if (length > int.MaxValue || pos + 12L + length > png.Length)
            {
                if (strictName is null) break;
                throw new AsyncDiffusionException($"'{strictName}' is a broken PNG: the chunk at byte {pos} declares {length:N0} bytes but only {png.Length - pos - 12:N0} follow.");
            }
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, (int)length);
            int zero = data.IndexOf((byte)0);
            if (zero > 0 && type == "tEXt") result[Encoding.Latin1.GetString(data[..zero])] = Encoding.Latin1.GetString(data[(zero + 1)..]);
            else if (zero > 0 && type == "iTXt" && data.Length > zero + 3 && data[zero + 1] == 0)
            {
                var rest = data[(zero + 3)..];
                int lang = rest.IndexOf((byte)0);
                if (lang >= 0)
                {
                    rest = rest[(lang + 1)..];
                    int translated = rest.IndexOf((byte)0);
                    if (translated >= 0) result[Encoding.Latin1.GetString(data[..zero])] = Encoding.UTF8.GetString(rest[(translated + 1)..]);
                }
            }
            if (type == "IEND") break;
            pos += 12 + (int)length;
        }
        return result;
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var typeBytes = Encoding.ASCII.GetBytes(type);
        uint crc = Crc32([.. typeBytes, .. data]);
        return
        [
            (byte)(data.Length >> 24), (byte)(data.Length >> 16), (byte)(data.Length >> 8), (byte)data.Length,
            .. typeBytes, .. data,
            (byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc,
        ];
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
