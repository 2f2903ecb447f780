namespace AsyncDiffusion.Imaging;

/// <summary>Uploaded mask images → masks (255 = repaint), by the convention of the API they came through.</summary>
public static class InpaintMasks
{
    /// <summary>
    /// AUTOMATIC1111's convention (create_binary_mask): an image with transparency is read by its
    /// alpha (opaque = repaint; with <paramref name="round"/> thresholded at &gt; 128), any other by
    /// its luminance (white = repaint).
    /// </summary>
    public static GreyImage FromImage(RgbaImage image, bool round = true)
    {
        if (!image.HasTransparency) return image.Luminance();
        var alpha = image.Alpha();
        if (round)
            for (int i = 0; i < alpha.Pixels.Length; i++) alpha.Pixels[i] = alpha.Pixels[i] > 128 ? (byte)255 : (byte)0;
        return alpha;
    }

    /// <summary>OpenAI's convention: fully transparent pixels (alpha 0) mark where to edit; everything else is kept.</summary>
    public static GreyImage FromTransparency(RgbaImage image)
    {
        var mask = GreyImage.Create(image.Width, image.Height);
        for (int i = 0; i < mask.Pixels.Length; i++) mask.Pixels[i] = image.Pixels[i * 4 + 3] == 0 ? (byte)255 : (byte)0;
        return mask;
    }
}
