namespace AsyncDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's mask blur: OpenCV's <c>GaussianBlur</c> on 8-bit masks, one axis at a time,
/// kernel size 2·⌊2.5σ + 0.5⌋ + 1. OpenCV blurs 8-bit images in fixed point (kernel weights with
/// 8 fractional bits summing exactly to 1, rounding errors carried from tap to tap) with
/// reflect-101 borders; this reproduces that arithmetic.
/// </summary>
public static class MaskBlur
{
    /// <summary>Blurs along x by <paramref name="sigmaX"/>, then along y by <paramref name="sigmaY"/>; 0 skips an axis.</summary>
    public static GreyImage Apply(GreyImage mask, int sigmaX, int sigmaY)
    {
        if (sigmaX > 0) mask = Blur(mask, sigmaX, horizontal: true);
        if (sigmaY > 0) mask = Blur(mask, sigmaY, horizontal: false);
        return mask;
    }

    /// <summary>A1111's kernel size for a blur of <paramref name="sigma"/> pixels; the blur reaches (size − 1) / 2 pixels.</summary>
    public static int KernelSize(int sigma) => 2 * (int)(2.5 * sigma + 0.5) + 1;

    public static GreyImage Blur(GreyImage mask, int sigma, bool horizontal)
    {
        var kernel = FixedPointKernel(KernelSize(sigma), sigma);
        int half = kernel.Length / 2, w = mask.Width, h = mask.Height;
        var result = GreyImage.Create(w, h);
        var src = mask.Pixels;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int sum = 0;
                for (int k = 0; k < kernel.Length; k++)
                {
                    int o = k - half;
                    int value = horizontal ? src[y * w + Reflect101(x + o, w)] : src[Reflect101(y + o, h) * w + x];
                    sum += kernel[k] * value;
                }
                result.Pixels[y * w + x] = (byte)Math.Min(255, (sum + 128) >> 8);
            }
        return result;
    }

    // OpenCV's getGaussianKernelBitExact + getGaussianKernelFixedPoint_ED with 8 fractional bits.
    internal static int[] FixedPointKernel(int n, double sigma)
    {
        int half = (n - 1) / 2;
        double scale = -0.125 / (sigma * sigma), sum = 0;
        var values = new double[half];
        for (int i = 0, x = 1 - n; i < half; i++, x += 2)
        {
            values[i] = Math.Exp((double)(x * x) * scale);
            sum += values[i];
        }
        sum = sum * 2 + 1;
        var kernel = new int[n];
        double error = 0;
        int total = 0;
        for (int i = 0; i < half; i++)
        {
            double adjusted = values[i] / sum * 256 + error;
            int v = (int)Math.Round(adjusted, MidpointRounding.ToEven);
            error = adjusted - v;
            kernel[i] = kernel[n - 1 - i] = v;
            total += v;
        }
        kernel[half] = 256 - 2 * total;
        return kernel;
    }

    private static int Reflect101(int i, int length)
    {
        if (length == 1) return 0;
        while (i < 0 || i >= length) i = i < 0 ? -i : 2 * length - 2 - i;
        return i;
    }
}
