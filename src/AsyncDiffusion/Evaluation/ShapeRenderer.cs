using AsyncDiffusion.Imaging;
using SkiaSharp;

namespace AsyncDiffusion.Evaluation;

/// <summary>Draws shapes-world scenes with anti-aliased edges, with the training set's geometry (without its jitter).</summary>
public static class ShapeRenderer
{
    public static RgbImage Render(ShapeScene scene, int size)
    {
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(ToSk(ShapeWorld.Colour(scene.Background)));
            foreach (var o in scene.Objects) Draw(canvas, o, ShapeWorld.Colour(scene.Background), size);
        }
        var image = RgbImage.Create(size, size);
        var rgba = bitmap.GetPixelSpan();
        for (int i = 0; i < size * size; i++)
        {
            image.Pixels[i * 3] = rgba[i * 4];
            image.Pixels[i * 3 + 1] = rgba[i * 4 + 1];
            image.Pixels[i * 3 + 2] = rgba[i * 4 + 2];
        }
        return image;
    }

    private static void Draw(SKCanvas canvas, ShapeObject o, NamedColour background, int size)
    {
        if (!ShapeWorld.Sizes.TryGetValue(o.Size, out double fraction))
            throw new AsyncDiffusionException($"Unknown size '{o.Size}'; expected one of: {string.Join(", ", ShapeWorld.Sizes.Keys)}.");
        if (!ShapeWorld.Positions.TryGetValue(o.Position, out var centre))
            throw new AsyncDiffusionException($"Unknown position '{o.Position}'; expected one of: {string.Join(", ", ShapeWorld.Positions.Keys)}.");
        float r = (float)(fraction * size / 2), cx = (float)(centre.X * size), cy = (float)(centre.Y * size);
        using var paint = new SKPaint { Color = ToSk(ShapeWorld.Colour(o.Colour)), IsAntialias = true, Style = SKPaintStyle.Fill };
        switch (o.Shape)
        {
            case "circle":
                canvas.DrawCircle(cx, cy, r, paint);
                break;
            case "ring":
                canvas.DrawCircle(cx, cy, r, paint);
                using (var hole = new SKPaint { Color = ToSk(background), IsAntialias = true, Style = SKPaintStyle.Fill })
                    canvas.DrawCircle(cx, cy, r * (float)ShapeWorld.RingHoleRadius, hole);
                break;
            case "square":
                canvas.DrawRect(cx - r, cy - r, 2 * r, 2 * r, paint);
                break;
            case "triangle":
                using (var triangle = Polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)])) canvas.DrawPath(triangle, paint);
                break;
            case "star":
                var points = new (float, float)[10];
                for (int k = 0; k < 10; k++)
                {
                    double radius = k % 2 == 0 ? r : r * ShapeWorld.StarInnerRadius, a = -Math.PI / 2 + k * Math.PI / 5;
                    points[k] = ((float)(cx + radius * Math.Cos(a)), (float)(cy + radius * Math.Sin(a)));
                }
                using (var star = Polygon(points)) canvas.DrawPath(star, paint);
                break;
            default:
                throw new AsyncDiffusionException($"Unknown shape '{o.Shape}'; expected one of: {string.Join(", ", ShapeWorld.Shapes)}.");
        }
    }

    private static SKPath Polygon((float X, float Y)[] points)
    {
        using var builder = new SKPathBuilder();
        builder.MoveTo(points[0].X, points[0].Y);
        foreach (var (x, y) in points.Skip(1)) builder.LineTo(x, y);
        builder.Close();
        return builder.Detach();
    }

    private static SKColor ToSk(NamedColour c) => new(c.R, c.G, c.B);
}
