namespace AsyncDiffusion.Imaging;

/// <summary>The resampling filters of Pillow's <c>Image.resize</c> that AUTOMATIC1111's image handling uses.</summary>
public enum ResampleFilter
{
    /// <summary>Cubic convolution, a = −0.5, support 2 (Pillow's default).</summary>
    Bicubic,
    /// <summary>Sinc windowed by sinc, support 3 (A1111's resize_image).</summary>
    Lanczos,
}

/// <summary>
/// Pillow's 8-bit two-pass resampling, reproduced to the byte: coefficients per output pixel
/// over a support widened by the downscale factor, normalised, then fixed point with 22
/// fractional bits; horizontal pass first, then vertical. AUTOMATIC1111 resizes images and
/// masks through Pillow, so masks scaled here land on exactly the same pixels.
/// </summary>
public static class PillowResampling
{
    /// <summary>A region of a resize's result: left and top in the full result (which may be larger than an array can hold), width and height.</summary>
    public readonly record struct OutputWindow(long Left, long Top, int Width, int Height);

    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>
    /// Resizes interleaved 8-bit pixels (<paramref name="channels"/> per pixel). <paramref name="box"/>
    /// is the source region (left, top, right, bottom), the whole image when null; a zero-width
    /// box stretches the edge it sits on, as Pillow does.
    /// </summary>
    public static byte[] Resize(byte[] pixels, int width, int height, int channels, int newWidth, int newHeight, ResampleFilter filter,
        (float Left, float Top, float Right, float Bottom)? box = null) =>
        ResizeWindow(pixels, width, height, channels, newWidth, newHeight, filter, new OutputWindow(0, 0, newWidth, newHeight), box);

    /// <summary>
    /// The <paramref name="window"/> of what <see cref="Resize(byte[], int, int, int, int, int, ResampleFilter, ValueTuple{float, float, float, float}?)"/>
    /// to <paramref name="newWidth"/>×<paramref name="newHeight"/> would give, byte for byte, computing
    /// only those pixels: each output pixel has the same coefficients wherever the window lies, so
    /// time and memory follow the window and the source rows it reads, however large the full result.
    /// </summary>
    public static byte[] ResizeWindow(byte[] pixels, int width, int height, int channels, long newWidth, long newHeight, ResampleFilter filter,
        OutputWindow window, (float Left, float Top, float Right, float Bottom)? box = null)
    {
        if (window.Left < 0 || window.Top < 0 || window.Width <= 0 || window.Height <= 0 || window.Left + window.Width > newWidth || window.Top + window.Height > newHeight)
            throw new ArgumentOutOfRangeException(nameof(window), $"The window {window} is not inside the {newWidth}×{newHeight} result.");
        var b = box ?? (0, 0, width, height);
        bool horizontal = newWidth != width || b.Left != 0 || b.Right != newWidth;
        bool vertical = newHeight != height || b.Top != 0 || b.Bottom != newHeight;
        if (!horizontal && !vertical) return A1111ImageResize.Crop(pixels, width, channels, ((int)window.Left, (int)window.Top, (int)window.Left + window.Width, (int)window.Top + window.Height));
        var (xBounds, xWeights, xSize) = Coefficients(width, b.Left, b.Right, newWidth, window.Left, window.Width, filter);
        var (yBounds, yWeights, ySize) = Coefficients(height, b.Top, b.Bottom, newHeight, window.Top, window.Height, filter);

        // Without a horizontal pass the window's columns are the source's, read in place.
        byte[] current = pixels;
        int currentWidth = width, firstColumn = (int)window.Left, firstRow = 0;
        if (horizontal)
        {
            // Only the rows the vertical pass reads (the window's own rows when there is none).
            firstRow = vertical ? yBounds[0] : (int)window.Top;
            int rows = vertical ? yBounds[(window.Height - 1) * 2] + yBounds[(window.Height - 1) * 2 + 1] - firstRow : window.Height;
            var temp = new byte[window.Width * rows * channels];
            for (int y = 0; y < rows; y++)
                for (int x = 0; x < window.Width; x++)
                {
                    int min = xBounds[x * 2], count = xBounds[x * 2 + 1];
                    for (int c = 0; c < channels; c++)
                    {
                        int sum = 1 << (PrecisionBits - 1);
                        for (int k = 0; k < count; k++) sum += current[((y + firstRow) * width + min + k) * channels + c] * xWeights[x * xSize + k];
                        temp[(y * window.Width + x) * channels + c] = Clip8(sum);
                    }
                }
            current = temp;
            currentWidth = window.Width;
            firstColumn = 0;
        }
        if (!vertical) return current;

        var result = new byte[window.Width * window.Height * channels];
        for (int y = 0; y < window.Height; y++)
        {
            int min = yBounds[y * 2] - firstRow, count = yBounds[y * 2 + 1];
            for (int x = 0; x < window.Width; x++)
                for (int c = 0; c < channels; c++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    for (int k = 0; k < count; k++) sum += current[((min + k) * currentWidth + firstColumn + x) * channels + c] * yWeights[y * ySize + k];
                    result[(y * window.Width + x) * channels + c] = Clip8(sum);
                }
        }
        return result;
    }

    public static GreyImage Resize(GreyImage image, int width, int height, ResampleFilter filter) =>
        new(width, height, Resize(image.Pixels, image.Width, image.Height, 1, width, height, filter));

    public static RgbImage Resize(RgbImage image, int width, int height, ResampleFilter filter) =>
        new(width, height, Resize(image.Pixels, image.Width, image.Height, 3, width, height, filter));

    /// <summary>
    /// Pillow's <c>resize(size, NEAREST)</c>: its affine scaling with source coordinates stepped
    /// from ½·scale by scale in double precision and truncated (ImagingScaleAffine).
    /// </summary>
    public static RgbImage ResizeNearest(RgbImage image, int width, int height)
    {
        if (width == image.Width && height == image.Height) return image with { Pixels = (byte[])image.Pixels.Clone() };
        double scaleX = (double)image.Width / width, scaleY = (double)image.Height / height;
        var columns = new int[width];
        double xo = scaleX * 0.5;
        for (int x = 0; x < width; x++, xo += scaleX) columns[x] = Math.Min((int)xo, image.Width - 1);
        var result = RgbImage.Create(width, height);
        double yo = scaleY * 0.5;
        for (int y = 0; y < height; y++, yo += scaleY)
        {
            int row = Math.Min((int)yo, image.Height - 1);
            for (int x = 0; x < width; x++)
                image.Pixels.AsSpan((row * image.Width + columns[x]) * 3, 3).CopyTo(result.Pixels.AsSpan((y * width + x) * 3, 3));
        }
        return result;
    }

    private static byte Clip8(int value) => (byte)Math.Clamp(value >> PrecisionBits, 0, 255);

    // Pillow's precompute_coeffs + normalize_coeffs_8bpc for output pixels first..first+count of outSize:
    // per output pixel the first source index, the tap count and fixed-point weights (ksize per row).
    private static (int[] Bounds, int[] Weights, int KernelSize) Coefficients(int inSize, float in0, float in1, long outSize, long first, int count, ResampleFilter filter)
    {
        double support0 = filter == ResampleFilter.Lanczos ? 3.0 : 2.0;
        double scale = (double)(in1 - in0) / outSize, filterScale = Math.Max(scale, 1.0);
        double support = support0 * filterScale;
        int kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[count * 2];
        var weights = new int[count * kernelSize];
        var k = new double[kernelSize];
        for (int i = 0; i < count; i++)
        {
            long xx = first + i;
            double center = in0 + (xx + 0.5) * scale, total = 0, inverse = 1.0 / filterScale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Filter(filter, (x + xmin - center + 0.5) * inverse);
                k[x] = w;
                total += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = total != 0 ? k[x] / total : k[x];
                weights[i * kernelSize + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            bounds[i * 2] = xmin;
            bounds[i * 2 + 1] = xmax;
        }
        return (bounds, weights, kernelSize);
    }

    private static double Filter(ResampleFilter filter, double x)
    {
        if (filter == ResampleFilter.Bicubic)
        {
            const double a = -0.5;
            if (x < 0) x = -x;
            if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
            if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
            return 0;
        }
        return x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0;
    }

    private static double Sinc(double x)
    {
        if (x == 0) return 1;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }
}
