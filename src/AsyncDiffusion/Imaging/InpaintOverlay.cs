namespace AsyncDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's final overlay: the original image with alpha 255 − mask is composited over
/// the generated one, so every pixel outside the mask comes back byte for byte and the mask's
/// soft edge blends. With "only masked" inpainting the generated crop is first scaled back
/// (crop and resize) and placed where it was cut from, on a transparent canvas of the original's size.
/// </summary>
public static class InpaintOverlay
{
    /// <summary>The overlay: <paramref name="original"/> visible where <paramref name="maskForOverlay"/> is 0.</summary>
    public static RgbaImage Create(RgbImage original, GreyImage maskForOverlay) =>
        PillowCompositing.Unpremultiply(PillowCompositing.PremultipliedThrough(original, maskForOverlay.Inverted()), original.Width, original.Height);

    /// <param name="generated">The decoded image, at the generation size.</param>
    /// <param name="pasteRegion">Where the generation size came from in the original ("only masked"), or null when it covers the whole image.</param>
    /// <param name="overlay">From <see cref="Create"/>, at the original's (or the whole generation's) size.</param>
    public static RgbImage Apply(RgbImage generated, (int X, int Y, int Width, int Height)? pasteRegion, RgbaImage overlay)
    {
        var canvas = RgbaImage.Create(overlay.Width, overlay.Height);
        var placed = generated;
        int left = 0, top = 0;
        if (pasteRegion is { } r)
        {
            placed = A1111ImageResize.Resize(generated, r.Width, r.Height, ResizeMode.CropAndResize);
            (left, top) = (r.X, r.Y);
        }
        for (int y = 0; y < placed.Height; y++)
            for (int x = 0; x < placed.Width; x++)
            {
                int cx = x + left, cy = y + top;
                if (cx < 0 || cy < 0 || cx >= canvas.Width || cy >= canvas.Height) continue;
                int s = (y * placed.Width + x) * 3, d = (cy * canvas.Width + cx) * 4;
                canvas.Pixels[d] = placed.Pixels[s];
                canvas.Pixels[d + 1] = placed.Pixels[s + 1];
                canvas.Pixels[d + 2] = placed.Pixels[s + 2];
                canvas.Pixels[d + 3] = 255;
            }
        PillowCompositing.AlphaComposite(canvas, overlay);
        var result = RgbImage.Create(canvas.Width, canvas.Height);
        for (int i = 0; i < result.Width * result.Height; i++)
            for (int c = 0; c < 3; c++) result.Pixels[i * 3 + c] = canvas.Pixels[i * 4 + c];
        return result;
    }
}
