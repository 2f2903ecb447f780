namespace AsyncDiffusion.Imaging;

/// <summary>
/// Pillow's 8-bit compositing arithmetic, reproduced to the byte, for the steps of AUTOMATIC1111's
/// inpainting that go through it: pasting through a mask into a premultiplied (RGBa) image,
/// un-premultiplying, <c>alpha_composite</c>, and <c>GaussianBlur</c> (three box blurs).
/// </summary>
public static class PillowCompositing
{
    private static int Div255(int a)
    {
        a += 128;
        return ((a >> 8) + a) >> 8;
    }

    /// <summary>
    /// A transparent RGBa image with <paramref name="image"/> pasted through <paramref name="opacity"/>:
    /// premultiplied channels c·o/255 and alpha o (Pillow's paste with an "L" mask onto zeros).
    /// </summary>
    public static byte[] PremultipliedThrough(RgbImage image, GreyImage opacity)
    {
        var result = new byte[image.Width * image.Height * 4];
        for (int i = 0; i < opacity.Pixels.Length; i++)
        {
            int o = opacity.Pixels[i];
            for (int c = 0; c < 3; c++) result[i * 4 + c] = (byte)Div255(image.Pixels[i * 3 + c] * o);
            result[i * 4 + 3] = (byte)Div255(255 * o);
        }
        return result;
    }

    /// <summary>RGBa → RGBA (Pillow's rgba2rgbA: truncating division, exact for alpha 0 and 255).</summary>
    public static RgbaImage Unpremultiply(byte[] premultiplied, int width, int height)
    {
        var result = RgbaImage.Create(width, height);
        for (int i = 0; i < premultiplied.Length; i += 4)
        {
            int alpha = premultiplied[i + 3];
            for (int c = 0; c < 3; c++)
                result.Pixels[i + c] = alpha is 255 or 0 ? premultiplied[i + c] : (byte)Math.Min(255, 255 * premultiplied[i + c] / alpha);
            result.Pixels[i + 3] = (byte)alpha;
        }
        return result;
    }

    /// <summary>Composites <paramref name="source"/> over <paramref name="destination"/> in place (Pillow's alpha_composite, 7 extra bits of precision).</summary>
    public static void AlphaComposite(RgbaImage destination, RgbaImage source)
    {
        const int precision = 7;
        var d = destination.Pixels;
        var s = source.Pixels;
        for (int i = 0; i < d.Length; i += 4)
        {
            uint sa = s[i + 3];
            if (sa == 0) continue;
            uint blend = d[i + 3] * (255 - sa);
            uint outa255 = sa * 255 + blend;
            uint coef1 = sa * 255 * 255 * (1u << precision) / outa255;
            uint coef2 = 255 * (1u << precision) - coef1;
            for (int c = 0; c < 3; c++)
            {
                uint tmp = s[i + c] * coef1 + d[i + c] * coef2 + (0x80u << precision);
                d[i + c] = (byte)((((tmp >> 8) + tmp) >> 8) >> precision);
            }
            uint a = outa255 + 0x80;
            d[i + 3] = (byte)(((a >> 8) + a) >> 8);
        }
    }

    /// <summary>Pillow's ImageFilter.GaussianBlur(radius) on interleaved 8-bit pixels: three box blurs along x, then three along y.</summary>
    public static byte[] GaussianBlur(byte[] pixels, int width, int height, int channels, float radius)
    {
        const int passes = 3;
        float boxRadius = BoxRadius(radius, passes);
        var current = (byte[])pixels.Clone();
        var line = new byte[Math.Max(width, height) * channels];
        var column = new byte[height * channels];
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < height; y++)
            {
                var row = current.AsSpan(y * width * channels, width * channels);
                BoxBlurLine(row, line, width, channels, boxRadius);
                line.AsSpan(0, width * channels).CopyTo(row);
            }
        for (int x = 0; x < width; x++)
        {
            for (int y = 0; y < height; y++)
                for (int c = 0; c < channels; c++) column[y * channels + c] = current[(y * width + x) * channels + c];
            for (int p = 0; p < passes; p++)
            {
                BoxBlurLine(column, line, height, channels, boxRadius);
                line.AsSpan(0, height * channels).CopyTo(column);
            }
            for (int y = 0; y < height; y++)
                for (int c = 0; c < channels; c++) current[(y * width + x) * channels + c] = column[y * channels + c];
        }
        return current;
    }

    // Pillow's _gaussian_blur_radius, in its float arithmetic (Gwosdek et al., extended box filter).
    private static float BoxRadius(float radius, int passes)
    {
        float sigma2 = radius * radius / passes;
        float length = (float)Math.Sqrt(12.0 * sigma2 + 1.0);
        float l = (float)Math.Floor((length - 1.0) / 2.0);
        float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
        a /= 6 * (sigma2 - (l + 1) * (l + 1));
        return l + a;
    }

    // One line of Pillow's box blur: a window of 2r+1 pixels at weight ww plus the two next ones at
    // the fractional weight fw, edges extended, 24-bit fixed point.
    private static void BoxBlurLine(ReadOnlySpan<byte> input, Span<byte> output, int length, int channels, float floatRadius)
    {
        int radius = (int)floatRadius;
        uint ww = (uint)((1 << 24) / (floatRadius * 2 + 1));
        uint fw = ((1u << 24) - (uint)(radius * 2 + 1) * ww) / 2;
        int last = length - 1;
        for (int c = 0; c < channels; c++)
        {
            uint acc = 0;
            for (int j = -radius; j <= radius; j++) acc += input[Math.Clamp(j, 0, last) * channels + c];
            for (int x = 0; x < length; x++)
            {
                if (x > 0) acc += (uint)(input[Math.Clamp(x + radius, 0, last) * channels + c] - input[Math.Clamp(x - radius - 1, 0, last) * channels + c]);
                uint bulk = acc * ww + (uint)(input[Math.Clamp(x - radius - 1, 0, last) * channels + c] + input[Math.Clamp(x + radius + 1, 0, last) * channels + c]) * fw;
                output[x * channels + c] = (byte)((bulk + (1u << 23)) >> 24);
            }
        }
    }
}
