using System.CommandLine;
using System.Text.Json;
using AsyncDiffusion.Compression;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion models quantize</c>: an int8 copy of a model folder, calibrated on its own denoising runs, with a quality report.</summary>
public static class QuantizeCommand
{
    public static Command Create(CliContext cli)
    {
        var source = new Argument<string>("source") { Description = "A float diffusers-ONNX model folder." };
        var output = new Option<string>("--out") { Description = "Folder to create (must not exist or be empty).", Required = true };
        var components = new Option<string?>("--components") { Description = $"Comma list of components to quantize (default: all present of {string.Join(",", QuantizeOptions.AllComponents)})." };
        var prompts = new Option<string?>("--calibration-prompts") { Description = "A text file with one calibration prompt per line (default: four built-in prompts)." };
        var steps = new Option<int>("--calibration-steps") { Description = "Denoising steps of each calibration trajectory.", DefaultValueFactory = _ => 8 };
        var size = new Option<string?>("--size") { Description = "Calibration WIDTHxHEIGHT (default: the model's native size)." };
        var exclude = new Option<string[]>("--exclude") { Description = "Keep layers whose node, weight or output name matches this pattern (* and ?) in float; repeatable.", AllowMultipleArgumentsPerToken = true };
        var clip = new Option<string>("--clip") { Description = "Activation range clipping: minerror (least squared error), percentile (0.01 %) or minmax.", DefaultValueFactory = _ => "minerror" };
        var report = new Option<string?>("--report") { Description = "Also write the quality report as JSON to this file." };
        var json = new Option<bool>("--json") { Description = "Print a machine-readable summary instead of tables." };
        var command = new Command("quantize",
            "Write an int8 copy of a model folder (QLinearConv convolutions, DynamicQuantizeMatMul linear layers), calibrated on the model's own denoising runs, and report its quality against the float model.")
        {
            source, output, components, prompts, steps, size, exclude, clip, report, json,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var (w, h) = GenerateCommand.ParseSize(parse.GetValue(size), null, null);
            string? reportFile = parse.GetValue(report);
            if (reportFile is not null && Path.GetDirectoryName(Path.GetFullPath(reportFile)) is { } dir && !Directory.Exists(dir))
                throw new AsyncDiffusionException($"--report '{reportFile}': folder '{dir}' does not exist.");
            var options = new QuantizeOptions
            {
                Components = parse.GetValue(components) is { } list ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null,
                CalibrationPrompts = parse.GetValue(prompts) is { } file ? ReadPrompts(file) : QuantizeOptions.DefaultPrompts,
                CalibrationSteps = parse.GetValue(steps),
                Width = w,
                Height = h,
                Exclude = parse.GetValue(exclude) ?? [],
                Clipping = ParseClipping(parse.GetValue(clip)!),
            };

            return cli.Cancellable(cancellation =>
            {
                bool asJson = parse.GetValue(json);
                var result = asJson
                    ? ModelQuantizer.Quantize(parse.GetValue(source)!, parse.GetValue(output)!, options, null, cancellation)
                    : RunWithProgress(cli, parse.GetValue(source)!, parse.GetValue(output)!, options, cancellation);
                if (reportFile is not null) result.Quality?.Save(reportFile);
                if (asJson) WriteJson(cli.Output, result);
                else WriteSummary(cli.Console, result);
                return 0;
            });
        }));
        return command;
    }

    internal static IReadOnlyList<string> ReadPrompts(string file)
    {
        if (!File.Exists(file)) throw new AsyncDiffusionException($"--calibration-prompts '{file}' not found; expected a text file with one prompt per line.");
        var lines = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        return lines.Length > 0 ? lines : throw new AsyncDiffusionException($"--calibration-prompts '{file}' has no prompts; expected one prompt per line.");
    }

    private static ClippingMethod ParseClipping(string name) => name.Trim().ToLowerInvariant() switch
    {
        "minerror" or "min-error" or "mse" => ClippingMethod.MinError,
        "percentile" => ClippingMethod.Percentile,
        "minmax" or "min-max" => ClippingMethod.MinMax,
        var other => throw new AsyncDiffusionException($"--clip '{other}' is not known; expected minerror, percentile or minmax."),
    };

    private static QuantizeResult RunWithProgress(CliContext cli, string source, string destination, QuantizeOptions options, CancellationToken cancellation)
    {
        QuantizeResult? result = null;
        cli.Console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                // Reports arrive on the quantizing thread, in order: a new stage finishes the ones before it.
                var progress = new SynchronousProgress(p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task))
                    {
                        foreach (var t in tasks.Values) t.Value = t.MaxValue;
                        task = tasks[p.Stage] = ctx.AddTask(Markup.Escape(p.Stage), maxValue: Math.Max(1, p.Total));
                    }
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                });
                result = ModelQuantizer.Quantize(source, destination, options, progress, cancellation);
                foreach (var t in tasks.Values) t.Value = t.MaxValue;
            });
        return result!;
    }

    private sealed class SynchronousProgress(Action<QuantizeProgress> report) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress value) => report(value);
    }

    private static void WriteSummary(IAnsiConsole console, QuantizeResult r)
    {
        var layers = new Table().Border(TableBorder.Rounded).Title("[bold]quantized components[/]").AddColumn("component").AddColumn("int8").AddColumn("kept float");
        foreach (var (name, record) in r.Components)
            layers.AddRow(name, $"{record.Convolutions} QLinearConv, {record.Linears} DynamicQuantizeMatMul",
                Markup.Escape(string.Join("; ", record.Kept.GroupBy(k => ShortReason(k.Reason)).Select(g => $"{g.Count()} {g.Key}"))));
        console.Write(layers);
        if (r.Quality is { } q) QualityTables(console, q);
        console.MarkupLine($"Wrote [bold]{Markup.Escape(r.Folder)}[/]: {r.Bytes / 1048576.0:F1} MiB (float {r.SourceBytes / 1048576.0:F1} MiB) in {r.Elapsed.TotalSeconds:F0} s.");
    }

    private static string ShortReason(string reason) => reason.Split(':', '(')[0].Trim();

    private static void QualityTables(IAnsiConsole console, QualityReport q)
    {
        var weights = new Table().Border(TableBorder.Rounded).Title("[bold]weight SQNR[/] (int8 per output channel)").AddColumn("component")
            .AddColumn(new TableColumn("layers").RightAligned()).AddColumn(new TableColumn("min dB").RightAligned()).AddColumn(new TableColumn("median dB").RightAligned())
            .AddColumn("worst layer");
        foreach (var group in q.WeightSqnr.GroupBy(l => l.Component))
        {
            var sorted = group.OrderBy(l => l.WeightSqnrDb).ToArray();
            weights.AddRow(group.Key, $"{sorted.Length}", $"{sorted[0].WeightSqnrDb:F1}", $"{sorted[sorted.Length / 2].WeightSqnrDb:F1}", Markup.Escape(sorted[0].Layer));
        }
        console.Write(weights);

        if (q.UNetOutput.Count > 0)
        {
            var unet = new Table().Border(TableBorder.Rounded).Title("[bold]UNet output SNR[/], int8 vs fp32, identical inputs").AddColumn("timestep")
                .AddColumn(new TableColumn("output (both CFG rows) dB").RightAligned()).AddColumn(new TableColumn("guided prediction dB").RightAligned());
            foreach (var t in q.UNetOutput) unet.AddRow($"{t.Timestep}", $"{t.OutputSnrDb:F1}", $"{t.GuidedSnrDb:F1}");
            console.Write(unet);
        }
        if (q.EndToEnd is { } e)
        {
            var table = new Table().Border(TableBorder.Rounded).Title($"[bold]end to end[/]: seed {e.Seed}, {e.Steps} steps, {e.Size}").AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
            table.AddRow("final latents SNR", $"{e.LatentSnrDb:F1} dB (relative error {e.LatentRelativeError:P1})");
            table.AddRow("image PSNR vs the fp32 image", $"{e.ImagePsnrDb:F1} dB");
            if (e.VaeDecoderPsnrDb is double v) table.AddRow("int8 VAE decoder on the fp32 latents", $"{v:F1} dB");
            console.Write(table);
        }
        console.MarkupLine($"TAESD decoder (real weights) quantized by the same code, decode PSNR vs fp32: {string.Join(", ", q.Taesd.Select(t => $"{t.Image} {t.PsnrDb:F1} dB"))}");
    }

    private static void WriteJson(TextWriter output, QuantizeResult r)
    {
        var payload = new Dictionary<string, object?>
        {
            ["folder"] = r.Folder,
            ["bytes"] = r.Bytes,
            ["source_bytes"] = r.SourceBytes,
            ["seconds"] = Math.Round(r.Elapsed.TotalSeconds, 1),
            ["components"] = r.Components.ToDictionary(c => c.Key, c => new
            {
                summary = c.Value.Summary(),
                qlinearconv = c.Value.Convolutions,
                dynamic_quantize_matmul = c.Value.Linears,
                kept = c.Value.Kept.Select(k => new { node = k.Node, op = k.OpType, reason = k.Reason }),
            }),
            ["quality"] = r.Quality is null ? null : JsonDocument.Parse(r.Quality.ToJson()).RootElement,
        };
        output.WriteLine(JsonSerializer.Serialize(payload, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }
}
