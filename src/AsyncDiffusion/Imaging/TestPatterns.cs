namespace AsyncDiffusion.Imaging;

/// <summary>
/// Procedural images for checks that need pictures without shipping any: a smooth gradient,
/// flat shapes on a background, and a noise-free photo-like landscape. Each takes a variant
/// number, so calibration can use other instances of the same kinds than the test images.
/// </summary>
public static class TestPatterns
{
    public static IReadOnlyList<string> Kinds { get; } = ["gradient", "shapes", "photo"];

    /// <summary>A [3, size, size] image in [0, 1] (CHW).</summary>
    public static float[] Chw(string kind, int size, int variant = 0)
    {
        var img = new float[3 * size * size];
        double shift = variant * 0.17, turn = variant * 0.9;
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
        {
            double u = x / (size - 1.0), v = y / (size - 1.0);
            (double r, double g, double b) = kind switch
            {
                "gradient" => Gradient(u, v, turn),
                "shapes" => Shapes(u, v, shift),
                "photo" => Photo(u, v, shift, turn),
                _ => throw new ArgumentException($"Unknown pattern '{kind}'; expected {string.Join(", ", Kinds)}.", nameof(kind)),
            };
            img[0 * size * size + y * size + x] = (float)Math.Clamp(r, 0, 1);
            img[1 * size * size + y * size + x] = (float)Math.Clamp(g, 0, 1);
            img[2 * size * size + y * size + x] = (float)Math.Clamp(b, 0, 1);
        }
        return img;
    }

    private static (double, double, double) Gradient(double u, double v, double turn)
    {
        // Rotated about the centre; variant 0 is the plain diagonal gradient.
        double a = 0.5 + (u - 0.5) * Math.Cos(turn) + (v - 0.5) * Math.Sin(turn);
        double b = 0.5 + (v - 0.5) * Math.Cos(turn) - (u - 0.5) * Math.Sin(turn);
        return (a, b, 1 - 0.5 * (a + b));
    }

    private static (double, double, double) Shapes(double u, double v, double shift)
    {
        double cx = 0.3 + shift % 0.4, cy = 0.35 + shift % 0.3;
        if ((u - cx) * (u - cx) + (v - cy) * (v - cy) < 0.04) return (0.9, 0.2 + shift % 0.5, 0.15);
        if (u > 0.55 - shift % 0.3 && u < 0.9 && v > 0.5 && v < 0.85) return (0.15, 0.35, 0.8 - shift % 0.4);
        if (v > 0.75 && u < 0.4) return (0.95, 0.85, 0.2);
        return (0.85, 0.85 - shift % 0.3, 0.8);
    }

    // Sky gradient, a sun, rolling hills with soft shading.
    private static (double, double, double) Photo(double u, double v, double shift, double turn)
    {
        double hill = 0.6 + 0.08 * Math.Sin(6 * u + turn) + 0.04 * Math.Sin(13 * u + 1 + 2 * turn) - shift % 0.2;
        if (v > hill)
        {
            double shade = 0.7 + 0.3 * Math.Cos(4 * u + 3 * v + turn);
            return (0.2 * shade + shift % 0.3, 0.55 * shade, 0.2 * shade);
        }
        double sx = 0.75 - shift % 0.5, sy = 0.25;
        double sun = Math.Exp(-((u - sx) * (u - sx) + (v - sy) * (v - sy)) / 0.005);
        return (0.45 + 0.5 * sun + 0.2 * v, 0.65 + 0.3 * sun + 0.1 * v, 0.95 - 0.3 * sun);
    }
}
