namespace AsyncDiffusion.Imaging;

/// <summary>AUTOMATIC1111's "only masked" region: the mask's bounding box plus padding, widened to the generation's aspect ratio.</summary>
public static class MaskCropRegion
{
    /// <summary>The box grown by <paramref name="padding"/> on every side, clipped to the image.</summary>
    public static (int Left, int Top, int Right, int Bottom) Pad((int Left, int Top, int Right, int Bottom) box, int padding, int width, int height) =>
        padding == 0 ? box : (Math.Max(box.Left - padding, 0), Math.Max(box.Top - padding, 0), Math.Min(box.Right + padding, width), Math.Min(box.Bottom + padding, height));

    /// <summary>
    /// Grows the shorter side of the region around its centre until its aspect ratio is that of
    /// <paramref name="processingWidth"/>×<paramref name="processingHeight"/>, shifted back inside the
    /// image where it would leave it (A1111's expand_crop_region).
    /// </summary>
    public static (int Left, int Top, int Right, int Bottom) Expand((int Left, int Top, int Right, int Bottom) region, int processingWidth, int processingHeight,
        int imageWidth, int imageHeight)
    {
        var (x1, y1, x2, y2) = region;
        double regionRatio = (double)(x2 - x1) / (y2 - y1), processingRatio = (double)processingWidth / processingHeight;
        if (regionRatio > processingRatio)
            (y1, y2) = Grow(y1, y2, (int)((x2 - x1) / processingRatio - (y2 - y1)), imageHeight);
        else
            (x1, x2) = Grow(x1, x2, (int)((y2 - y1) * processingRatio - (x2 - x1)), imageWidth);
        return (x1, y1, x2, y2);
    }

    private static (int, int) Grow(int a, int b, int by, int limit)
    {
        a -= FloorDiv(by, 2);
        b += by - FloorDiv(by, 2);
        if (b >= limit)
        {
            a -= b - limit;
            b = limit;
        }
        if (a < 0)
        {
            b -= a;
            a = 0;
        }
        if (b >= limit) b = limit;
        return (a, b);
    }

    private static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);
}
