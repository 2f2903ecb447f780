using AsyncDiffusion.Evaluation;
using SkiaSharp;

namespace AsyncDiffusion.Cli;

/// <summary>
/// A contact sheet of evaluated images: up to 16 in a 4×4 grid, each enlarged (nearest
/// neighbour, so pixels stay visible) above its prompt and the judge's verdict. Text needs a
/// system TrueType font (see <see cref="SweepChart"/>); without one the sheet has images only.
/// </summary>
public static class EvaluationGrid
{
    private const int Cell = 256, Caption = 64, Columns = 4;

    public static void Save(IReadOnlyList<AdherenceSample> samples, string path)
    {
        var shown = samples.Take(Columns * Columns).ToList();
        int rows = (shown.Count + Columns - 1) / Columns;
        using var surface = SKSurface.Create(new SKImageInfo(Columns * Cell, rows * (Cell + Caption)));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        string? fontFile = SweepChart.FontCandidates.FirstOrDefault(File.Exists);
        using var typeface = fontFile is null ? null : SKTypeface.FromFile(fontFile);
        using var font = typeface is null ? null : new SKFont(typeface, 13);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var good = new SKPaint { Color = new SKColor(0, 128, 0), IsAntialias = true };
        using var bad = new SKPaint { Color = new SKColor(190, 0, 0), IsAntialias = true };
        for (int i = 0; i < shown.Count; i++)
        {
            var s = shown[i];
            int x = i % Columns * Cell, y = i / Columns * (Cell + Caption);
            using (var bitmap = ToBitmap(s.Image))
            using (var image = SKImage.FromBitmap(bitmap))
                canvas.DrawImage(image, new SKRect(x, y, x + Cell, y + Cell), new SKSamplingOptions(SKFilterMode.Nearest));
            if (font is null) continue;
            float line = y + Cell + 15;
            foreach (var text in Wrap(s.Scene.Caption, font, Cell - 8))
            {
                canvas.DrawText(text, x + 4, line, SKTextAlign.Left, font, ink);
                line += 15;
            }
            var v = s.Verdict;
            string verdict = $"saw: {v.Background} bg, {v.ObjectColour ?? "no"} {v.Shape ?? "object"}";
            canvas.DrawText(verdict, x + 4, line, SKTextAlign.Left, font, v.BackgroundRight && v.ObjectColourRight && v.ShapeRight ? good : bad);
        }
        using var png = surface.Snapshot().Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, png.ToArray());
    }

    private static SKBitmap ToBitmap(Imaging.RgbImage image)
    {
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = new byte[image.Width * image.Height * 4];
        for (int p = 0; p < image.Width * image.Height; p++)
        {
            pixels[p * 4] = image.Pixels[p * 3];
            pixels[p * 4 + 1] = image.Pixels[p * 3 + 1];
            pixels[p * 4 + 2] = image.Pixels[p * 3 + 2];
            pixels[p * 4 + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        return bitmap;
    }

    private static IEnumerable<string> Wrap(string text, SKFont font, float width)
    {
        string line = "";
        foreach (var word in text.Split(' '))
        {
            string candidate = line.Length == 0 ? word : $"{line} {word}";
            if (line.Length > 0 && font.MeasureText(candidate) > width)
            {
                yield return line;
                line = word;
            }
            else line = candidate;
        }
        if (line.Length > 0) yield return line;
    }
}
