namespace AsyncDiffusion.Imaging;

/// <summary>An 8-bit RGBA image with straight (not premultiplied) alpha, row-major and interleaved.</summary>
public sealed record RgbaImage(int Width, int Height, byte[] Pixels)
{
    public static RgbaImage Create(int width, int height) => new(width, height, new byte[width * height * 4]);

    /// <summary>The alpha channel alone.</summary>
    public GreyImage Alpha()
    {
        var result = GreyImage.Create(Width, Height);
        for (int i = 0; i < result.Pixels.Length; i++) result.Pixels[i] = Pixels[i * 4 + 3];
        return result;
    }

    /// <summary>Whether any pixel is less than fully opaque.</summary>
    public bool HasTransparency
    {
        get
        {
            for (int i = 3; i < Pixels.Length; i += 4) if (Pixels[i] != 255) return true;
            return false;
        }
    }

    /// <summary>Luminance (ITU-R 601-2, Pillow's integer "L" conversion), alpha ignored.</summary>
    public GreyImage Luminance()
    {
        var result = GreyImage.Create(Width, Height);
        for (int i = 0; i < result.Pixels.Length; i++)
        {
            int s = i * 4;
            result.Pixels[i] = (byte)((Pixels[s] * 19595 + Pixels[s + 1] * 38470 + Pixels[s + 2] * 7471 + 0x8000) >> 16);
        }
        return result;
    }
}
