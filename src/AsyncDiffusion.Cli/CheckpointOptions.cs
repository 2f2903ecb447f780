using System.CommandLine;
using AsyncDiffusion.Models.Checkpoints;
using Spectre.Console;

namespace AsyncDiffusion.Cli;

/// <summary>
/// <c>--vae</c>, <c>--prediction</c> and <c>--lora</c>, and what every command that takes
/// <c>--model</c> does with a checkpoint: a <c>.safetensors</c> file or diffusers folder is converted
/// into the cache once (with a progress bar) and the cached ONNX folder used from then on; the
/// decisions (family, prediction, scheduler, LoRAs) and any unused tensors are printed on stderr.
/// </summary>
public sealed class CheckpointOptions
{
    public Option<string?> Vae { get; } = new("--vae") { Description = "With a checkpoint --model: use this VAE .safetensors instead of the embedded one." };
    public Option<string?> Prediction { get; } = new("--prediction") { Description = "With a checkpoint --model: v or epsilon, overriding the sidecar and the heuristics." };
    public Option<string[]> Lora { get; } = new("--lora") { Description = "FILE[:WEIGHT]: merge a LoRA (kohya/A1111 or diffusers/PEFT) into a checkpoint --model (repeatable; weight 1 by default)." };

    public void AddTo(Command command)
    {
        command.Options.Add(Vae);
        command.Options.Add(Prediction);
        command.Options.Add(Lora);
    }

    public const string ModelHelp = "A diffusers-ONNX folder, a .safetensors checkpoint (SD 1.x/2.x single file) or a diffusers folder of safetensors (converted once into the cache).";

    /// <summary>The ONNX folder to open for <paramref name="model"/>: the folder itself, or the (cached) conversion of a checkpoint.</summary>
    public string Resolve(ParseResult parse, string model, CliContext cli, bool showProgress) =>
        ResolveImport(Import(parse, model), cli, showProgress)?.Folder ?? model;

    /// <summary>The import a --model asks for, or null when it is an ONNX folder or absent (then --vae/--prediction/--lora are refused).</summary>
    public CheckpointImport? Import(ParseResult parse, string? model)
    {
        string? vae = parse.GetValue(Vae);
        string? prediction = parse.GetValue(Prediction);
        var loras = (parse.GetValue(Lora) ?? []).Select(LoraReference.Parse).ToList();
        if (model is null)
        {
            if (vae is not null || prediction is not null || loras.Count > 0)
                throw new AsyncDiffusionException("--vae, --prediction and --lora need a checkpoint --model (a .safetensors file or a diffusers folder).");
            return null;
        }
        RejectOtherFiles(model);
        if (!CheckpointImport.IsCheckpoint(model))
        {
            if (vae is not null || prediction is not null || loras.Count > 0)
                throw new AsyncDiffusionException($"--vae, --prediction and --lora apply to a .safetensors checkpoint or diffusers folder; '{model}' is neither (an ONNX folder is used as it is).");
            return null;
        }
        if (vae is not null && !File.Exists(vae)) throw new AsyncDiffusionException($"--vae '{vae}' not found; expected a VAE .safetensors file.");
        foreach (var lora in loras)
            if (!File.Exists(lora.Path)) throw new AsyncDiffusionException($"--lora '{lora.Path}' not found; expected FILE[:WEIGHT] with a LoRA .safetensors file.");
        return new CheckpointImport
        {
            Source = model,
            Vae = vae,
            Prediction = prediction is null ? null : Sidecar.ParsePrediction(prediction, "--prediction"),
            Loras = loras,
        };
    }

    /// <summary>A file --model cannot take: pickled checkpoints are code, not data, and are never loaded.</summary>
    public static void RejectOtherFiles(string model)
    {
        if (File.Exists(model) && !model.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new AsyncDiffusionException($"--model '{model}' is a file but not a .safetensors checkpoint; pickled .ckpt/.pt/.bin files can run code when loaded and are not read — convert them to .safetensors first.");
    }

    /// <summary>Converts (or finds in the cache) and reports; null for a null import.</summary>
    public static ConvertedCheckpoint? ResolveImport(CheckpointImport? import, CliContext cli, bool showProgress, string? target = null)
    {
        if (import is null) return null;
        ConvertedCheckpoint? converted = null;
        if (showProgress)
        {
            cli.Console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"converting {Path.GetFileName(import.Source.TrimEnd(Path.DirectorySeparatorChar))}", maxValue: 1);
                    var progress = new Reporter(p =>
                    {
                        task.MaxValue = p.Total;
                        task.Value = p.Done;
                        task.Description = $"converting: {p.Component}";
                    });
                    converted = Run(import, target, progress);
                    task.Value = task.MaxValue;
                });
        }
        else converted = Run(import, target, null);
        Report(cli, converted!);
        return converted;
    }

    private static ConvertedCheckpoint Run(CheckpointImport import, string? target, IProgress<ConversionProgress>? progress) =>
        target is null ? CheckpointConverter.Resolve(import, progress: progress) : CheckpointConverter.Convert(import, target, progress: progress);

    private static void Report(CliContext cli, ConvertedCheckpoint c)
    {
        foreach (var d in c.Decisions) cli.Error.WriteLine($"checkpoint: {d}");
        foreach (var w in c.Warnings) cli.Error.WriteLine($"warning: {w}");
        cli.Error.WriteLine(c.FromCache
            ? $"checkpoint: using the cached conversion {c.Folder} ({c.Elapsed.TotalSeconds:F2} s)"
            : $"checkpoint: converted into {c.Folder} in {c.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; would post to the thread pool and arrive after the bar is gone).</summary>
    private sealed class Reporter(Action<ConversionProgress> report) : IProgress<ConversionProgress>
    {
        public void Report(ConversionProgress value) => report(value);
    }
}
