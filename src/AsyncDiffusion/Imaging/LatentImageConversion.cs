namespace AsyncDiffusion.Imaging;

/// <summary>
/// Tensor ↔ image conversions exactly as diffusers does them, in float32:
/// decoder output x ∈ [-1, 1] → clamp(x/2 + 0.5, 0, 1) · 255, rounded half to even (numpy);
/// TAESD output is already in [0, 1]; encoder input is pixel/255·2 − 1, NCHW.
/// </summary>
public static class LatentImageConversion
{
    /// <summary>One image of a [batch, 3, H, W] tensor → RGB; <paramref name="zeroToOne"/> for TAESD-style outputs.</summary>
    public static RgbImage ToImage(ReadOnlySpan<float> chw, int batchIndex, int width, int height, bool zeroToOne = false)
    {
        var image = RgbImage.Create(width, height);
        int plane = width * height;
        var src = chw.Slice(batchIndex * 3 * plane, 3 * plane);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < plane; i++)
                image.Pixels[i * 3 + c] = ToByte(src[c * plane + i], zeroToOne);
        return image;
    }

    public static byte ToByte(float x, bool zeroToOne)
    {
        float v = zeroToOne ? x : x / 2f + 0.5f;
        if (!(v >= 0f)) v = 0f; // also maps NaN to 0
        if (v > 1f) v = 1f;
        return (byte)MathF.Round(v * 255f, MidpointRounding.ToEven);
    }

    /// <summary>RGB → [3, H, W] in [-1, 1] (VAE encoder) or [0, 1] (TAESD encoder), written at <paramref name="destination"/>.</summary>
    public static void ToTensor(RgbImage image, Span<float> destination, bool zeroToOne = false)
    {
        int plane = image.Width * image.Height;
        for (int i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
            {
                float v = image.Pixels[i * 3 + c] / 255f;
                destination[c * plane + i] = zeroToOne ? v : 2f * v - 1f;
            }
    }
}
