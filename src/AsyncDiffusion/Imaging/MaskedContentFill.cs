namespace AsyncDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's "fill" masked content: the masked area of the init image is replaced by the
/// colours around it, spread by compositing ever less blurred copies of the unmasked part
/// (blur radius 256, 64, 16 twice, 4 four times, 2 twice, 0) over each other, in Pillow's arithmetic.
/// </summary>
public static class MaskedContentFill
{
    private static readonly int[] Layers = [256, 64, 16, 16, 4, 4, 4, 4, 2, 2, 0];

    public static RgbImage Apply(RgbImage image, GreyImage mask)
    {
        var keep = mask.Inverted();
        var premultiplied = PillowCompositing.PremultipliedThrough(image, keep);
        var result = RgbaImage.Create(image.Width, image.Height);
        var blurred = new Dictionary<int, RgbaImage>();
        foreach (int radius in Layers)
        {
            if (!blurred.TryGetValue(radius, out var layer))
                blurred[radius] = layer = PillowCompositing.Unpremultiply(
                    PillowCompositing.GaussianBlur(premultiplied, image.Width, image.Height, 4, radius), image.Width, image.Height);
            PillowCompositing.AlphaComposite(result, layer);
        }
        var rgb = RgbImage.Create(image.Width, image.Height);
        for (int i = 0; i < rgb.Width * rgb.Height; i++)
            for (int c = 0; c < 3; c++) rgb.Pixels[i * 3 + c] = result.Pixels[i * 4 + c];
        return rgb;
    }
}
