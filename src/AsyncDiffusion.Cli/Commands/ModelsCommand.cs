using System.CommandLine;
using System.Text.Json;
using AsyncDiffusion.Compression;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Models.Synthetic;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion models create-synthetic | create-builtin | convert | inspect | quantize | evaluate</c>.</summary>
public static class ModelsCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("models", "Create synthetic model folders and the built-in model, convert checkpoints, inspect models, quantize them to int8, and evaluate prompt adherence.");
        command.Subcommands.Add(CreateSynthetic(cli));
        command.Subcommands.Add(CreateBuiltIn(cli));
        command.Subcommands.Add(Convert(cli));
        command.Subcommands.Add(Inspect(cli));
        command.Subcommands.Add(QuantizeCommand.Create(cli));
        command.Subcommands.Add(EvaluateCommand.Create(cli));
        return command;
    }

    private static Command CreateSynthetic(CliContext cli)
    {
        var preset = new Option<string>("--preset") { Description = $"Architecture: {string.Join(", ", SyntheticPreset.All.Select(p => p.Name))}.", DefaultValueFactory = _ => "tiny" };
        var precision = new Option<string>("--precision") { Description = "fp32 or fp16.", DefaultValueFactory = _ => "fp32" };
        var vintage = new Option<string>("--vintage") { Description = $"Export contract to write: {string.Join(", ", ContractVintage.All.Select(v => v.Name))}.", DefaultValueFactory = _ => ContractVintage.Optimum124.Name };
        var seed = new Option<ulong>("--seed") { Description = "Weight seed (same seed, byte-identical files).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Folder to create (must not exist or be empty).", Required = true };
        var command = new Command("create-synthetic",
            "Write a diffusers-ONNX model folder with a real Stable Diffusion architecture and seeded random weights (it makes abstract images; for tests and benchmarks).")
        {
            preset, precision, vintage, seed, output,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var p = SyntheticPreset.Parse(parse.GetValue(preset)!);
            var v = ContractVintage.Parse(parse.GetValue(vintage)!);
            bool half = ParseHalf(parse.GetValue(precision)!);
            var summary = cli.Console.Status().Start($"Writing {p.Name} ({p.Description})…",
                _ => SyntheticModelWriter.Write(parse.GetValue(output)!, p, v, half, parse.GetValue(seed)));
            var table = new Table().Border(TableBorder.Rounded).AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned());
            foreach (var (name, count) in summary.Parameters) table.AddRow(name, $"{count:N0}");
            cli.Console.Write(table);
            cli.Console.MarkupLine($"Wrote [bold]{Markup.Escape(summary.Folder)}[/]: {summary.Bytes / 1048576.0:F1} MiB in {summary.Elapsed.TotalSeconds:F1} s " +
                $"({(half ? "fp16" : "fp32")}, {v.Name} contract, seed {summary.Seed}). Random weights: it makes abstract images.");
            return 0;
        }));
        return command;
    }

    private static Command CreateBuiltIn(CliContext cli)
    {
        var weights = new Option<string?>("--weights") { Description = "A weights file from tools/train-tiny-model. Default: the shipped weights." };
        var output = new Option<string>("--out") { Description = "Folder to create (must not exist or be empty).", Required = true };
        var command = new Command("create-builtin",
            "Write the built-in tiny-shapes model (trained on coloured shapes, 64x64) as a diffusers-ONNX folder, from the shipped or given weights.")
        {
            weights, output,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            string? file = parse.GetValue(weights);
            var summary = TinyShapesModel.Write(parse.GetValue(output)!, file is null ? null : SafeTensors.Load(file));
            var table = new Table().Border(TableBorder.Rounded).AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned());
            foreach (var (name, count) in summary.Parameters) table.AddRow(name, $"{count:N0}");
            cli.Console.Write(table);
            cli.Console.MarkupLine($"Wrote [bold]{Markup.Escape(summary.Folder)}[/]: {summary.Bytes / 1048576.0:F1} MiB in {summary.Elapsed.TotalSeconds:F1} s.");
            return 0;
        }));
        return command;
    }

    private static Command Convert(CliContext cli)
    {
        var source = new Argument<string>("source") { Description = "A .safetensors checkpoint (SD 1.x/2.x single file) or a diffusers folder of safetensors." };
        var output = new Option<string?>("--out") { Description = "Folder to write (new or empty). Default: the cache, where --model FILE finds it." };
        var precision = new Option<string>("--precision") { Description = "fp32 (what CPUs run fastest) or fp16.", DefaultValueFactory = _ => "fp32" };
        var checkpoint = new CheckpointOptions();
        var command = new Command("convert",
            "Convert a checkpoint into a diffusers-ONNX folder: detect SD 1.x / 2.x / inpainting, decide prediction type and scheduler, merge LoRAs.")
        {
            source, output, precision,
        };
        checkpoint.AddTo(command);
        command.SetAction(parse => cli.Guard(() =>
        {
            string path = parse.GetValue(source)!;
            if (!File.Exists(path) && !Directory.Exists(path)) throw new AsyncDiffusionException($"'{path}' does not exist; expected a .safetensors checkpoint or a diffusers folder.");
            if (!CheckpointImport.IsCheckpoint(path))
                throw new AsyncDiffusionException($"'{path}' is not a checkpoint to convert; expected a .safetensors file or a diffusers folder with unet/*.safetensors (an ONNX folder is used as it is).");
            var import = checkpoint.Import(parse, path)! with { Half = ParseHalf(parse.GetValue(precision)!) };
            var converted = CheckpointOptions.ResolveImport(import, cli, showProgress: true, target: parse.GetValue(output))!;
            long bytes = Directory.EnumerateFiles(converted.Folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            cli.Console.MarkupLine($"{(converted.FromCache ? "Already converted" : "Wrote")} [bold]{Markup.Escape(converted.Folder)}[/]: {bytes / 1048576.0:F1} MiB, " +
                $"{Markup.Escape(converted.Kind.Description)}, {CheckpointConverter.PredictionName(converted.Prediction)}, sha256 {converted.Sha256[..12]}…");
            return 0;
        }));
        return command;
    }

    private static bool ParseHalf(string precision) => precision.ToLowerInvariant() switch
    {
        "fp32" or "float32" => false,
        "fp16" or "float16" => true,
        var other => throw new AsyncDiffusionException($"--precision '{other}' is not supported; expected fp32 or fp16."),
    };

    private static Command Inspect(CliContext cli)
    {
        var folder = new Argument<string>("model") { Description = CheckpointOptions.ModelHelp };
        var json = new Option<bool>("--json") { Description = "Print the contract as JSON." };
        var checkpoint = new CheckpointOptions();
        var command = new Command("inspect", "Open a model and print the contract found: inputs, dtypes, export vintage, scaling factor, parameter counts, quantization.")
        {
            folder, json,
        };
        checkpoint.AddTo(command);
        command.SetAction(parse => cli.Guard(() =>
        {
            using var model = ModelFolder.Open(checkpoint.Resolve(parse, parse.GetValue(folder)!, cli, showProgress: !parse.GetValue(json)));
            var report = Describe(model);
            if (parse.GetValue(json)) cli.Output.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
            else
            {
                var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumn("").AddColumn("");
                foreach (var (k, v) in report) table.AddRow(Markup.Escape(k), Markup.Escape(v?.ToString() ?? ""));
                cli.Console.Write(table);
            }
            return 0;
        }));
        return command;
    }

    private static Dictionary<string, object?> Describe(ModelFolder m)
    {
        string unetFile = Path.Combine(m.Path, "unet", "model.onnx");
        var report = new Dictionary<string, object?>
        {
            ["folder"] = m.Path,
            ["pipeline"] = m.PipelineClass,
            ["synthetic"] = m.SyntheticPreset is null ? "no" : $"yes: preset {m.SyntheticPreset}, random weights",
            ["checkpoint"] = CheckpointConverter.Origin(m.Path) ?? "no",
            ["vintage"] = m.Vintage,
            ["scheduler"] = m.SchedulerConfig.ClassName,
            ["prediction_type"] = m.Prediction.ToString(),
            ["guidance_scale"] = m.RecommendedGuidanceScale is double guidance ? $"{guidance} (named by the folder)" : $"not named (default {GenerateCommand.DefaultGuidanceScale})",
            ["tokenizer"] = $"{m.Tokenizer.Vocabulary.Count} tokens, max length {m.Tokenizer.MaxLength}, pad id {m.Tokenizer.PadId}",
            ["text_encoder.input_ids"] = m.TextEncoder.InputIdsType.ToString(),
            ["text_encoder.hidden_size"] = m.TextEncoder.HiddenSize,
            ["text_encoder.pooler_output"] = m.TextEncoder.HasPooler,
            ["text_encoder.parameters"] = OnnxGraphInfo.ParameterCount(Path.Combine(m.Path, "text_encoder", "model.onnx")),
            ["unet.sample"] = m.UNet.SampleType.ToString(),
            ["unet.timestep"] = $"{m.UNet.TimestepType} ({m.UNet.Timestep})",
            ["unet.latent_channels"] = m.LatentChannels,
            ["unet.input_channels"] = m.UNet.IsInpainting ? $"{m.UNet.InputChannels} (inpainting: latents, mask, masked-image latents)" : m.UNet.InputChannels.ToString(),
            ["unet.cross_attention_dim"] = m.UNet.CrossAttentionDim,
            ["unet.external_data"] = string.Join(", ", OnnxGraphInfo.ExternalDataFiles(unetFile)),
            ["unet.parameters"] = OnnxGraphInfo.ParameterCount(unetFile),
            ["vae.scale_factor"] = m.VaeScaleFactor,
            ["vae.scaling_factor"] = m.ScalingFactor,
            ["vae_decoder.parameters"] = OnnxGraphInfo.ParameterCount(Path.Combine(m.Path, "vae_decoder", "model.onnx")),
            ["vae_encoder"] = m.VaeEncoder is null ? "absent (no img2img)" : m.VaeEncoder.Output.ToString(),
            ["quantization"] = m.Quantization is null ? "none (float)" : $"int8: {string.Join(", ", m.Quantization.Keys)}",
        };
        foreach (var component in QuantizeOptions.AllComponents)
        {
            string folder = Path.Combine(m.Path, component);
            if (QuantizationRecord.Load(folder) is not { } record) continue;
            report[$"{component}.quantization"] = record.Summary();
            report[$"{component}.int8_weights"] = OnnxGraphInfo.Int8ParameterCount(Path.Combine(folder, "model.onnx"));
            if (record.Calibration is { } c) report[$"{component}.calibration"] = $"{c.Source}; clipping {c.Clipping}";
        }
        return report;
    }
}
