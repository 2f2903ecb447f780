namespace AsyncDiffusion.Imaging;

/// <summary>An 8-bit RGB image, pixels row-major and interleaved (R, G, B).</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    public static RgbImage Create(int width, int height) => new(width, height, new byte[width * height * 3]);
}
