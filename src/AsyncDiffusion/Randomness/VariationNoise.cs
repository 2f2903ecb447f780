namespace AsyncDiffusion.Randomness;

/// <summary>
/// AUTOMATIC1111's variation seeds, for one image: which seeds shape its first noise tensor and how.
/// <see cref="Strength"/> 0 and no <see cref="ResizeFrom"/> leave the seed's plain noise.
/// </summary>
/// <param name="Subseed">The variation seed (A1111's <c>subseed</c>).</param>
/// <param name="Strength">How far the noise moves from the seed's towards the subseed's, 0 to 1 (<c>subseed_strength</c>).</param>
/// <param name="ResizeFrom">Latent size (height, width) the seed's noise is made at and pasted centred from (<c>seed_resize_from_h/w</c> ÷ the VAE factor); null: the image's own.</param>
public readonly record struct Variation(long Subseed, double Strength, (int Height, int Width)? ResizeFrom = null)
{
    public static Variation None => new(0, 0);
}

/// <summary>
/// The first noise tensor of an image as AUTOMATIC1111's <c>ImageRNG.first()</c> makes it, and the
/// generator that continues after it (step noise). The image's generator, seeded with the seed,
/// draws the noise at the image's latent size. With a subseed strength, the seed's noise is
/// slerped towards the first noise of a fresh generator seeded with the subseed. With a resize,
/// the seed's (and subseed's) noise is made by fresh generators at the other size, slerped there,
/// and pasted centred over the image generator's own noise (cropped where it is larger).
/// </summary>
public static class VariationNoise
{
    /// <summary>
    /// Fills <paramref name="destination"/> ([channels, height, width]) with the image's first noise
    /// and returns its generator, positioned after that noise.
    /// </summary>
    public static INoiseGenerator First(NoiseGeneratorKind kind, long seed, Variation variation, int channels, int height, int width, Span<float> destination)
    {
        if (destination.Length != channels * height * width)
            throw new ArgumentException($"The noise buffer has {destination.Length} values; [{channels}, {height}, {width}] needs {channels * height * width}.", nameof(destination));
        var generator = NoiseGenerators.Create(kind, (ulong)seed);
        var (nh, nw) = variation.ResizeFrom ?? (height, width);
        bool resized = (nh, nw) != (height, width);

        float[] noise;
        if (resized)
        {
            noise = new float[channels * nh * nw];
            NoiseGenerators.Create(kind, (ulong)seed).NextGaussian(noise);
        }
        else
        {
            generator.NextGaussian(destination);
            noise = variation.Strength == 0 ? [] : destination.ToArray();
        }

        if (variation.Strength != 0)
        {
            var sub = new float[channels * nh * nw];
            NoiseGenerators.Create(kind, (ulong)variation.Subseed).NextGaussian(sub);
            noise = Slerp(variation.Strength, noise, sub, channels, nh, nw);
            if (!resized) noise.CopyTo(destination);
        }

        if (resized)
        {
            generator.NextGaussian(destination);
            PasteCentred(noise, nh, nw, destination, height, width, channels);
        }
        return generator;
    }

    /// <summary>
    /// A1111's <c>slerp(val, low, high)</c> on one image's [C, H, W] noise. Its norms and dot
    /// products run along dimension 1 — down each column of each channel — so every (channel,
    /// column) pair is interpolated on its own; when the dot products' mean exceeds 0.9995 it
    /// falls back to <c>low·val + high·(1 − val)</c>, as A1111 writes it.
    /// </summary>
    public static float[] Slerp(double val, float[] low, float[] high, int channels, int height, int width)
    {
        if (low.Length == 0) return [];
        int columns = channels * width;
        var dot = new float[columns];
        var lowNorm = new float[columns];
        var highNorm = new float[columns];
        for (int c = 0; c < channels; c++)
            for (int x = 0; x < width; x++)
            {
                double l2 = 0, h2 = 0;
                for (int y = 0; y < height; y++)
                {
                    int i = (c * height + y) * width + x;
                    l2 += (double)low[i] * low[i];
                    h2 += (double)high[i] * high[i];
                }
                int k = c * width + x;
                lowNorm[k] = (float)Math.Sqrt(l2);
                highNorm[k] = (float)Math.Sqrt(h2);
                double d = 0;
                for (int y = 0; y < height; y++)
                {
                    int i = (c * height + y) * width + x;
                    d += (double)(low[i] / lowNorm[k]) * (high[i] / highNorm[k]);
                }
                dot[k] = (float)d;
            }

        var result = new float[low.Length];
        float v = (float)val;
        if (dot.Average(d => (double)d) > 0.9995)
        {
            for (int i = 0; i < result.Length; i++) result[i] = low[i] * v + high[i] * (1 - v);
            return result;
        }
        for (int c = 0; c < channels; c++)
            for (int x = 0; x < width; x++)
            {
                float omega = MathF.Acos(dot[c * width + x]);
                float so = MathF.Sin(omega);
                float a = MathF.Sin((1 - v) * omega) / so, b = MathF.Sin(v * omega) / so;
                for (int y = 0; y < height; y++)
                {
                    int i = (c * height + y) * width + x;
                    result[i] = a * low[i] + b * high[i];
                }
            }
        return result;
    }

    // A1111: the smaller of the two is centred in the larger (offsets rounded down); where the pasted noise is larger, its centre is cropped.
    private static void PasteCentred(float[] noise, int nh, int nw, Span<float> target, int height, int width, int channels)
    {
        int dx = (width - nw) / 2, dy = (height - nh) / 2;
        if (width - nw < 0 && (width - nw) % 2 != 0) dx--; // Python's // rounds towards −∞
        if (height - nh < 0 && (height - nh) % 2 != 0) dy--;
        int w = dx >= 0 ? nw : nw + 2 * dx, h = dy >= 0 ? nh : nh + 2 * dy;
        int tx = Math.Max(dx, 0), ty = Math.Max(dy, 0), sx = Math.Max(-dx, 0), sy = Math.Max(-dy, 0);
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < h; y++)
                noise.AsSpan((c * nh + sy + y) * nw + sx, w).CopyTo(target.Slice((c * height + ty + y) * width + tx, w));
    }
}
