namespace AsyncDiffusion.Imaging;

/// <summary>The modes of <c>torch.nn.functional.interpolate</c> that AUTOMATIC1111's latent upscalers use.</summary>
public enum InterpolationMode { Bilinear, Bicubic, Nearest, NearestExact }

/// <summary>
/// <c>torch.nn.functional.interpolate(x, size=(h, w), mode, align_corners=False, antialias)</c>
/// on float [C, H, W] tensors, as PyTorch's CPU kernels compute it: the scale is in/out in
/// float32; bilinear and bicubic sample at <c>scale·(i + ½) − ½</c> (bilinear clamps below at 0,
/// bicubic uses a = −0.75 with edge indices clamped); nearest takes ⌊i·scale⌋, nearest-exact
/// ⌊(i + ½)·scale⌋. With antialias, bilinear and bicubic become Pillow-style separable filters
/// (triangle, or cubic with a = −0.5) widened by the downscale factor and normalised over the
/// taps inside the image — so they differ from the plain modes even when upscaling (bicubic).
/// Width is interpolated first, then height.
/// </summary>
public static class TorchInterpolation
{
    public static float[] Resize(ReadOnlySpan<float> input, int channels, int height, int width, int outHeight, int outWidth, InterpolationMode mode, bool antialias = false)
    {
        if (input.Length != channels * height * width) throw new ArgumentException($"The tensor has {input.Length} values; [{channels}, {height}, {width}] needs {channels * height * width}.", nameof(input));
        if (outHeight < 1 || outWidth < 1) throw new ArgumentOutOfRangeException(nameof(outHeight), "The output size must be at least 1×1.");
        var columns = Taps(width, outWidth, mode, antialias);
        var rows = Taps(height, outHeight, mode, antialias);

        var horizontal = new float[channels * height * outWidth];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
            {
                var src = input.Slice((c * height + y) * width, width);
                for (int x = 0; x < outWidth; x++) horizontal[(c * height + y) * outWidth + x] = columns[x].Apply(src, 1);
            }
        var output = new float[channels * outHeight * outWidth];
        for (int c = 0; c < channels; c++)
        {
            var plane = horizontal.AsSpan(c * height * outWidth, height * outWidth);
            for (int y = 0; y < outHeight; y++)
                for (int x = 0; x < outWidth; x++)
                    output[(c * outHeight + y) * outWidth + x] = rows[y].Apply(plane[x..], outWidth);
        }
        return output;
    }

    /// <summary>The source indices and weights of one output index along one axis.</summary>
    private readonly record struct Tap(int[] Index, float[] Weight)
    {
        // Σ weight·source, accumulated in float32 in tap order as PyTorch's kernels do.
        public float Apply(ReadOnlySpan<float> source, int stride)
        {
            float sum = 0;
            for (int k = 0; k < Index.Length; k++) sum += source[Index[k] * stride] * Weight[k];
            return sum;
        }
    }

    private static Tap[] Taps(int input, int output, InterpolationMode mode, bool antialias)
    {
        float scale = (float)input / output;
        var taps = new Tap[output];
        for (int i = 0; i < output; i++)
            taps[i] = antialias && mode is InterpolationMode.Bilinear or InterpolationMode.Bicubic
                ? Antialiased(i, input, scale, mode == InterpolationMode.Bicubic)
                : mode switch
                {
                    InterpolationMode.Nearest => new Tap([Math.Min((int)MathF.Floor(i * scale), input - 1)], [1f]),
                    InterpolationMode.NearestExact => new Tap([Math.Min((int)MathF.Floor((i + 0.5f) * scale), input - 1)], [1f]),
                    InterpolationMode.Bilinear => Linear(i, input, scale),
                    _ => Cubic(i, input, scale),
                };
        return taps;
    }

    private static Tap Linear(int i, int input, float scale)
    {
        float src = scale * (i + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        int i0 = (int)src;
        int i1 = i0 + (i0 < input - 1 ? 1 : 0);
        float l1 = src - i0, l0 = 1f - l1;
        return new Tap([i0, i1], [l0, l1]);
    }

    private const float CubicA = -0.75f;

    private static Tap Cubic(int i, int input, float scale)
    {
        float src = scale * (i + 0.5f) - 0.5f;
        int floor = (int)MathF.Floor(src);
        float t = src - floor;
        return new Tap(
            [Clamp(floor - 1, input), Clamp(floor, input), Clamp(floor + 1, input), Clamp(floor + 2, input)],
            [Far(t + 1f), Near(t), Near(1f - t), Far(2f - t)]);

        static float Near(float x) => ((CubicA + 2) * x - (CubicA + 3)) * x * x + 1;
        static float Far(float x) => ((CubicA * x - 5 * CubicA) * x + 8 * CubicA) * x - 4 * CubicA;
        static int Clamp(int index, int size) => Math.Clamp(index, 0, size - 1);
    }

    // PyTorch's _upsample_*_aa: support widened by the downscale factor, weights normalised over the taps inside the input.
    private static Tap Antialiased(int i, int input, float scale, bool cubic)
    {
        double support = (cubic ? 2.0 : 1.0) * (scale >= 1 ? scale : 1.0);
        double center = scale * (i + 0.5);
        double invScale = scale >= 1 ? 1.0 / scale : 1.0;
        int min = Math.Max((int)(center - support + 0.5), 0);
        int size = Math.Min((int)(center + support + 0.5), input) - min;
        var index = new int[size];
        var weight = new float[size];
        double total = 0;
        var raw = new double[size];
        for (int j = 0; j < size; j++)
        {
            double x = (j + min - center + 0.5) * invScale;
            raw[j] = cubic ? CubicAntialias(x) : Math.Max(0, 1 - Math.Abs(x));
            total += raw[j];
        }
        for (int j = 0; j < size; j++)
        {
            index[j] = min + j;
            weight[j] = (float)(total != 0 ? raw[j] / total : raw[j]);
        }
        return new Tap(index, weight);
    }

    private static double CubicAntialias(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }
}
