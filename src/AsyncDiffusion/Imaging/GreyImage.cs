namespace AsyncDiffusion.Imaging;

/// <summary>
/// An 8-bit single-channel image, row-major. Inpainting masks are grey images: 255 marks
/// pixels to repaint, 0 pixels to keep, values between blend.
/// </summary>
public sealed record GreyImage(int Width, int Height, byte[] Pixels)
{
    public static GreyImage Create(int width, int height) => new(width, height, new byte[width * height]);

    public static GreyImage Filled(int width, int height, byte value)
    {
        var image = Create(width, height);
        Array.Fill(image.Pixels, value);
        return image;
    }

    /// <summary>255 − v everywhere (Pillow's ImageOps.invert).</summary>
    public GreyImage Inverted()
    {
        var result = Create(Width, Height);
        for (int i = 0; i < Pixels.Length; i++) result.Pixels[i] = (byte)(255 - Pixels[i]);
        return result;
    }

    /// <summary>True when no pixel is marked (all 0).</summary>
    public bool IsEmpty => !Pixels.AsSpan().ContainsAnyExcept((byte)0);

    /// <summary>True when every pixel is fully marked (all 255).</summary>
    public bool IsFull => !Pixels.AsSpan().ContainsAnyExcept((byte)255);

    /// <summary>The smallest rectangle holding every non-zero pixel, as (left, top, right, bottom) with right/bottom exclusive; null when empty (Pillow's getbbox).</summary>
    public (int Left, int Top, int Right, int Bottom)? BoundingBox()
    {
        int left = Width, top = Height, right = 0, bottom = 0;
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
                if (Pixels[y * Width + x] != 0)
                {
                    left = Math.Min(left, x);
                    right = Math.Max(right, x + 1);
                    top = Math.Min(top, y);
                    bottom = Math.Max(bottom, y + 1);
                }
        return right == 0 ? null : (left, top, right, bottom);
    }
}
