namespace AsyncDiffusion.Imaging;

/// <summary>The image upscalers of AUTOMATIC1111 that need no model.</summary>
public enum ImageUpscaler
{
    /// <summary>"None": a plain Lanczos resize to the target.</summary>
    None,
    /// <summary>"Lanczos": Pillow's Lanczos by the scale, then to the target.</summary>
    Lanczos,
    /// <summary>"Nearest": Pillow's nearest neighbour by the scale, then Lanczos to the target.</summary>
    Nearest,
}

/// <summary>
/// AUTOMATIC1111's <c>images.resize_image(0, image, w, h, upscaler_name)</c> with its built-in
/// upscalers, resize for resize as A1111 (1.7+) makes them: with a scale s = max(w/W, h/H) above 1
/// the upscaler runs once to (⌊W·s⌋, ⌊H·s⌋) unless the image already covers the size below, then Lanczos to (⌊W·s⌋ and ⌊H·s⌋ rounded down to
/// multiples of 8) if that differs, then Lanczos to (w, h) if that differs; at a scale of 1 or
/// less only the last Lanczos runs. "None" is the last Lanczos alone.
/// </summary>
public static class A1111Upscaling
{
    public static RgbImage Resize(RgbImage image, int width, int height, ImageUpscaler upscaler)
    {
        if (upscaler == ImageUpscaler.None) return LanczosTo(image, width, height);
        double scale = Math.Max((double)width / image.Width, (double)height / image.Height);
        if (scale > 1.0)
        {
            int destWidth = (int)(Math.Floor(image.Width * scale / 8) * 8), destHeight = (int)(Math.Floor(image.Height * scale / 8) * 8);
            int upWidth = (int)(image.Width * scale), upHeight = (int)(image.Height * scale);
            if (image.Width < destWidth || image.Height < destHeight)
                image = upscaler == ImageUpscaler.Nearest
                    ? PillowResampling.ResizeNearest(image, upWidth, upHeight)
                    : PillowResampling.Resize(image, upWidth, upHeight, ResampleFilter.Lanczos);
            image = LanczosTo(image, destWidth, destHeight);
        }
        return LanczosTo(image, width, height);
    }

    private static RgbImage LanczosTo(RgbImage image, int width, int height) =>
        image.Width == width && image.Height == height ? image : PillowResampling.Resize(image, width, height, ResampleFilter.Lanczos);
}
