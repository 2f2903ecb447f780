using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Evaluation;

/// <summary>What the judge saw in one image, and whether it matches the requested scene.</summary>
public sealed record ShapeVerdict(
    string Background,
    string? ObjectColour,
    string? Shape,
    (double X, double Y)? Centre,
    bool BackgroundRight,
    bool ObjectColourRight,
    bool ShapeRight,
    bool? PositionRight,
    ShapeFeatures? Features);

/// <summary>Measurements of the main object's mask: area in pixels, area ÷ bounding box, area ÷ convex hull, hole area ÷ filled area.</summary>
public sealed record ShapeFeatures(int Area, double Fill, double Solidity, double Holes);

/// <summary>
/// A procedural judge for the shapes world: the background is the colour most border pixels
/// are nearest to; the main object is the largest 4-connected region of pixels far from the
/// background colour; its colour is the palette colour nearest its median; its shape follows from
/// holes (ring), solidity = area ÷ convex hull (star), and fill = area ÷ bounding box (square,
/// circle, triangle).
/// </summary>
public static class ShapeJudge
{
    /// <summary>RGB distance from the background beyond which a pixel belongs to an object.</summary>
    public const double ObjectDistance = 80;

    /// <summary>Regions smaller than this fraction of the image are noise, not an object.</summary>
    public const double MinObjectFraction = 0.01;

    public static ShapeVerdict Judge(RgbImage image, ShapeScene requested)
    {
        int w = image.Width, h = image.Height;
        var (background, backgroundRgb) = Background(image);
        var mask = new bool[w * h];
        for (int i = 0; i < w * h; i++) mask[i] = Distance(image.Pixels, i, backgroundRgb) > ObjectDistance;
        var region = LargestRegion(mask, w, h);
        var main = requested.Main;
        if (region.Count < MinObjectFraction * w * h)
            return new ShapeVerdict(background, null, null, null, background == requested.Background, false, false, main.Position == "center" ? null : false, null);

        string colour = NearestColour(MedianColour(image.Pixels, region)).Name;
        var features = Measure(region, w, h);
        string shape = Classify(features);
        double cx = region.Average(p => p % w + 0.5) / w, cy = region.Average(p => p / w + 0.5) / h;
        bool? positionRight = null;
        if (main.Position != "center")
        {
            var expected = ShapeWorld.Positions[main.Position];
            positionRight = Math.Abs(cx - expected.X) < 0.15 && Math.Abs(cy - expected.Y) < 0.15;
        }
        return new ShapeVerdict(background, colour, shape, (cx, cy), background == requested.Background, colour == main.Colour, shape == main.Shape,
            positionRight, features);
    }

    /// <summary>Ring: a hole of more than 8 % of the filled area. Star: solidity under 0.8. Then fill: square ≥ 0.88 > circle ≥ 0.64 > triangle.</summary>
    public static string Classify(ShapeFeatures f) =>
        f.Holes > 0.08 ? "ring"
        : f.Solidity < 0.8 ? "star"
        : f.Fill >= 0.88 ? "square"
        : f.Fill >= 0.64 ? "circle"
        : "triangle";

    public static NamedColour NearestColour((double R, double G, double B) rgb) =>
        ShapeWorld.Colours.MinBy(c => Square(c.R - rgb.R) + Square(c.G - rgb.G) + Square(c.B - rgb.B))!;

    // The palette colour most border pixels are nearest to, and those pixels' median RGB.
    private static (string Name, (double R, double G, double B) Rgb) Background(RgbImage image)
    {
        int w = image.Width, h = image.Height;
        var border = new List<int>();
        for (int x = 0; x < w; x++) { border.Add(x); border.Add((h - 1) * w + x); }
        for (int y = 1; y < h - 1; y++) { border.Add(y * w); border.Add(y * w + w - 1); }
        var votes = border.GroupBy(i => NearestColour(Rgb(image.Pixels, i)).Name).OrderByDescending(g => g.Count()).First();
        return (votes.Key, MedianColour(image.Pixels, votes.ToList()));
    }

    private static (double R, double G, double B) Rgb(byte[] pixels, int i) => (pixels[i * 3], pixels[i * 3 + 1], pixels[i * 3 + 2]);

    private static double Distance(byte[] pixels, int i, (double R, double G, double B) c) =>
        Math.Sqrt(Square(pixels[i * 3] - c.R) + Square(pixels[i * 3 + 1] - c.G) + Square(pixels[i * 3 + 2] - c.B));

    private static double Square(double x) => x * x;

    private static (double R, double G, double B) MedianColour(byte[] pixels, IReadOnlyList<int> indices)
    {
        double Median(int channel)
        {
            var values = indices.Select(i => pixels[i * 3 + channel]).Order().ToArray();
            return values[values.Length / 2];
        }
        return (Median(0), Median(1), Median(2));
    }

    private static List<int> LargestRegion(bool[] mask, int w, int h)
    {
        var seen = new bool[mask.Length];
        var best = new List<int>();
        var stack = new Stack<int>();
        for (int start = 0; start < mask.Length; start++)
        {
            if (!mask[start] || seen[start]) continue;
            var region = new List<int>();
            seen[start] = true;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                region.Add(p);
                int x = p % w, y = p / w;
                foreach (var (nx, ny) in new[] { (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1) })
                {
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    int q = ny * w + nx;
                    if (mask[q] && !seen[q]) { seen[q] = true; stack.Push(q); }
                }
            }
            if (region.Count > best.Count) best = region;
        }
        return best;
    }

    private static ShapeFeatures Measure(List<int> region, int w, int h)
    {
        int x0 = region.Min(p => p % w), x1 = region.Max(p => p % w), y0 = region.Min(p => p / w), y1 = region.Max(p => p / w);
        int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
        // Fill holes: pixels of the bounding box that the outside cannot reach through non-object pixels.
        var inRegion = new bool[bw * bh];
        foreach (int p in region) inRegion[(p / w - y0) * bw + p % w - x0] = true;
        var outside = new bool[bw * bh];
        var stack = new Stack<int>();
        for (int i = 0; i < bw * bh; i++)
        {
            int x = i % bw, y = i / bw;
            if ((x == 0 || y == 0 || x == bw - 1 || y == bh - 1) && !inRegion[i]) { outside[i] = true; stack.Push(i); }
        }
        while (stack.Count > 0)
        {
            int p = stack.Pop(), x = p % bw, y = p / bw;
            foreach (var (nx, ny) in new[] { (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1) })
            {
                if (nx < 0 || ny < 0 || nx >= bw || ny >= bh) continue;
                int q = ny * bw + nx;
                if (!inRegion[q] && !outside[q]) { outside[q] = true; stack.Push(q); }
            }
        }
        int filled = bw * bh - outside.Count(o => o);
        double holes = (filled - region.Count) / (double)filled;
        // Convex hull of the filled pixels' corners, so a full square has solidity 1.
        var corners = new List<(long X, long Y)>();
        for (int i = 0; i < bw * bh; i++)
        {
            if (outside[i]) continue;
            long x = i % bw, y = i / bw;
            corners.Add((x, y)); corners.Add((x + 1, y)); corners.Add((x, y + 1)); corners.Add((x + 1, y + 1));
        }
        double hull = HullArea(corners);
        return new ShapeFeatures(region.Count, filled / (double)(bw * bh), filled / hull, holes);
    }

    // Andrew's monotone chain, then the shoelace formula.
    private static double HullArea(List<(long X, long Y)> points)
    {
        var p = points.Distinct().OrderBy(q => q.X).ThenBy(q => q.Y).ToArray();
        if (p.Length < 3) return 1;
        long Cross((long X, long Y) o, (long X, long Y) a, (long X, long Y) b) => (a.X - o.X) * (b.Y - o.Y) - (a.Y - o.Y) * (b.X - o.X);
        var hull = new (long X, long Y)[2 * p.Length];
        int k = 0;
        for (int i = 0; i < p.Length; i++)
        {
            while (k >= 2 && Cross(hull[k - 2], hull[k - 1], p[i]) <= 0) k--;
            hull[k++] = p[i];
        }
        for (int i = p.Length - 2, lower = k + 1; i >= 0; i--)
        {
            while (k >= lower && Cross(hull[k - 2], hull[k - 1], p[i]) <= 0) k--;
            hull[k++] = p[i];
        }
        double area = 0;
        for (int i = 0; i < k - 1; i++) area += hull[i].X * hull[i + 1].Y - hull[i + 1].X * hull[i].Y;
        return Math.Max(1, Math.Abs(area) / 2);
    }
}
