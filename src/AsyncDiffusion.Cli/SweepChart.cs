using AsyncDiffusion.Benchmarking;

namespace AsyncDiffusion.Cli;

/// <summary>
/// The sweep as a PNG: throughput against p99 latency, one point per configuration, the sync
/// baseline marked. Labels need a TrueType font; SkiaSharp's self-contained build has none, so a
/// common system font is used when present (DejaVu, Liberation), else the chart has no text.
/// </summary>
public static class SweepChart
{
    internal static readonly string[] FontCandidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
        @"C:\Windows\Fonts\arial.ttf",
    ];

    /// <summary>Writes the chart; returns false when no font was found (the chart then has no labels).</summary>
    public static bool Save(IReadOnlyList<BenchmarkReport> reports, string path)
    {
        string? font = FontCandidates.FirstOrDefault(File.Exists);
        var plot = new ScottPlot.Plot();
        if (font is not null)
        {
            ScottPlot.Fonts.AddFontFile("ChartSans", font);
            plot.Font.Set("ChartSans");
        }
        foreach (var r in reports)
        {
            bool baseline = r.Mode == "sync";
            var point = plot.Add.Marker(r.Latency.P99 / 1000, r.ImagesPerMinute);
            point.Size = baseline ? 14 : 9;
            point.Color = baseline ? ScottPlot.Colors.Red : ScottPlot.Colors.Blue;
            string label = baseline ? "sync (baseline)" : $"S={r.Streams} B={r.MaxBatch} C={r.Concurrency}";
            var text = plot.Add.Text(label, r.Latency.P99 / 1000, r.ImagesPerMinute);
            text.LabelFontSize = 11;
            text.OffsetX = 8;
        }
        var first = reports[0];
        plot.Axes.Margins(horizontal: 0.25, vertical: 0.15); // room for the labels
        plot.Title($"{first.Size}, {first.Steps} steps, {first.Decoder}: throughput vs p99 latency");
        plot.XLabel("p99 latency (s)");
        plot.YLabel("images/min");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 900, 600);
        return font is not null;
    }
}
