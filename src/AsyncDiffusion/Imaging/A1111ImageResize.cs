namespace AsyncDiffusion.Imaging;

/// <summary>AUTOMATIC1111's resize modes (its <c>resize_mode</c> 0–2).</summary>
public enum ResizeMode
{
    /// <summary>Stretch to the target size.</summary>
    Stretch = 0,
    /// <summary>Scale to cover the target keeping the aspect ratio, then crop the centre.</summary>
    CropAndResize = 1,
    /// <summary>Scale to fit inside the target keeping the aspect ratio, then fill the bars by stretching the outermost rows or columns.</summary>
    ResizeAndFill = 2,
}

/// <summary>
/// AUTOMATIC1111's <c>images.resize_image</c> without an upscaler: Lanczos scaling (Pillow's,
/// byte for byte), integer geometry as A1111 computes it, black where nothing is pasted, and
/// for <see cref="ResizeMode.ResizeAndFill"/> bars made by Pillow's default bicubic over the edge row.
/// </summary>
public static class A1111ImageResize
{
    public static RgbImage Resize(RgbImage image, int width, int height, ResizeMode mode) =>
        new(width, height, Resize(image.Pixels, image.Width, image.Height, 3, width, height, mode));

    public static GreyImage Resize(GreyImage image, int width, int height, ResizeMode mode) =>
        new(width, height, Resize(image.Pixels, image.Width, image.Height, 1, width, height, mode));

    public static byte[] Resize(byte[] pixels, int width, int height, int channels, int targetWidth, int targetHeight, ResizeMode mode)
    {
        if (mode == ResizeMode.Stretch)
            return PillowResampling.Resize(pixels, width, height, channels, targetWidth, targetHeight, ResampleFilter.Lanczos);

        // Compare aspect ratios exactly (A1111 divides in floating point; equal ratios behave the same).
        long target = (long)targetWidth * height, source = (long)width * targetHeight;
        bool wider = target > source, taller = target < source;
        bool matchWidth = mode == ResizeMode.CropAndResize ? wider : taller;
        // In long arithmetic: a very thin source scaled to cover the target can be wider than an int.
        long scaledWidth = matchWidth ? targetWidth : Math.Max(1, (long)width * targetHeight / height);
        long scaledHeight = matchWidth ? Math.Max(1, (long)height * targetWidth / width) : targetHeight;
        long offsetX = targetWidth / 2 - scaledWidth / 2, offsetY = targetHeight / 2 - scaledHeight / 2;
        var canvas = new byte[targetWidth * targetHeight * channels];
        if (mode == ResizeMode.CropAndResize)
        {
            // The scaled image covers the target: only the part the canvas keeps is computed, so a
            // source of extreme aspect ratio costs no more than its pixels and the result.
            var visible = new PillowResampling.OutputWindow(Math.Max(0, -offsetX), Math.Max(0, -offsetY),
                (int)Math.Min(scaledWidth - Math.Max(0, -offsetX), targetWidth - Math.Max(0, offsetX)),
                (int)Math.Min(scaledHeight - Math.Max(0, -offsetY), targetHeight - Math.Max(0, offsetY)));
            var part = PillowResampling.ResizeWindow(pixels, width, height, channels, scaledWidth, scaledHeight, ResampleFilter.Lanczos, visible);
            Paste(canvas, targetWidth, targetHeight, part, visible.Width, visible.Height, channels, (int)Math.Max(0, offsetX), (int)Math.Max(0, offsetY));
            return canvas;
        }
        // Fitting inside the target: the scaled image is no larger than the target.
        int scaledW = (int)scaledWidth, scaledH = (int)scaledHeight, left = (int)offsetX, top = (int)offsetY;
        var scaled = PillowResampling.Resize(pixels, width, height, channels, scaledW, scaledH, ResampleFilter.Lanczos);
        Paste(canvas, targetWidth, targetHeight, scaled, scaledW, scaledH, channels, left, top);

        if (mode == ResizeMode.ResizeAndFill && taller && top > 0)
        {
            Paste(canvas, targetWidth, targetHeight, PillowResampling.Resize(scaled, scaledW, scaledH, channels, targetWidth, top, ResampleFilter.Bicubic, (0, 0, targetWidth, 0)),
                targetWidth, top, channels, 0, 0);
            Paste(canvas, targetWidth, targetHeight, PillowResampling.Resize(scaled, scaledW, scaledH, channels, targetWidth, top, ResampleFilter.Bicubic, (0, scaledH, targetWidth, scaledH)),
                targetWidth, top, channels, 0, top + scaledH);
        }
        if (mode == ResizeMode.ResizeAndFill && wider && left > 0)
        {
            Paste(canvas, targetWidth, targetHeight, PillowResampling.Resize(scaled, scaledW, scaledH, channels, left, targetHeight, ResampleFilter.Bicubic, (0, 0, 0, targetHeight)),
                left, targetHeight, channels, 0, 0);
            Paste(canvas, targetWidth, targetHeight, PillowResampling.Resize(scaled, scaledW, scaledH, channels, left, targetHeight, ResampleFilter.Bicubic, (scaledW, 0, scaledW, targetHeight)),
                left, targetHeight, channels, left + scaledW, 0);
        }
        return canvas;
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="target"/> at (left, top), clipped to the target.</summary>
    internal static void Paste(byte[] target, int targetWidth, int targetHeight, byte[] source, int width, int height, int channels, int left, int top)
    {
        for (int y = Math.Max(0, -top); y < height && y + top < targetHeight; y++)
        {
            int x0 = Math.Max(0, -left), x1 = Math.Min(width, targetWidth - left);
            if (x1 <= x0) continue;
            source.AsSpan((y * width + x0) * channels, (x1 - x0) * channels).CopyTo(target.AsSpan(((y + top) * targetWidth + left + x0) * channels));
        }
    }

    /// <summary>The region (left, top, right, bottom; right/bottom exclusive) of an image, as a new image.</summary>
    public static byte[] Crop(byte[] pixels, int width, int channels, (int Left, int Top, int Right, int Bottom) region)
    {
        int w = region.Right - region.Left, h = region.Bottom - region.Top;
        var result = new byte[w * h * channels];
        for (int y = 0; y < h; y++)
            pixels.AsSpan(((region.Top + y) * width + region.Left) * channels, w * channels).CopyTo(result.AsSpan(y * w * channels));
        return result;
    }
}
