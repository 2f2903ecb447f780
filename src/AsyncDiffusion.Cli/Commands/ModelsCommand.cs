using System.CommandLine;
using System.Text.Json;
using AsyncDiffusion.Evaluation;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Pipelines;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion models create-synthetic | inspect</c>.</summary>
public static class ModelsCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("models", "Create synthetic model folders, inspect model folders, and evaluate prompt adherence.");
        command.Subcommands.Add(CreateSynthetic(cli));
        command.Subcommands.Add(CreateBuiltIn(cli));
        command.Subcommands.Add(Inspect(cli));
        command.Subcommands.Add(Evaluate(cli));
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
            bool half = parse.GetValue(precision)!.ToLowerInvariant() switch
            {
                "fp32" or "float32" => false,
                "fp16" or "float16" => true,
                var other => throw new AsyncDiffusionException($"--precision '{other}' is not supported; expected fp32 or fp16."),
            };
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

    private static Command Inspect(CliContext cli)
    {
        var folder = new Argument<string>("folder") { Description = "A diffusers-ONNX model folder." };
        var json = new Option<bool>("--json") { Description = "Print the contract as JSON." };
        var command = new Command("inspect", "Open a model folder and print the contract found: inputs, dtypes, export vintage, scaling factor, parameter counts.")
        {
            folder, json,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            using var model = ModelFolder.Open(parse.GetValue(folder)!);
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

    private static Command Evaluate(CliContext cli)
    {
        var model = new Option<string?>("--model") { Description = "A model that knows the shapes world. Default: the built-in tiny-shapes model." };
        var prompts = new Option<int>("--prompts") { Description = "Held-out prompts to run (of 40).", DefaultValueFactory = _ => 24 };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt (1, 2, …).", DefaultValueFactory = _ => 2 };
        var cfg = new Option<double?>("--cfg") { Description = "Classifier-free guidance scale (≤ 1: off). Default: the model's own (2.5 for the built-in model), else 7.5." };
        var steps = new Option<int>("--steps") { Description = "Denoising steps.", DefaultValueFactory = _ => 20 };
        var scheduler = new Option<string?>("--scheduler") { Description = "Scheduler. Default: the model's." };
        var grid = new Option<string?>("--grid") { Description = "Also write a PNG of the first 16 images (first seed of each prompt) with prompts and verdicts." };
        var json = new Option<bool>("--json") { Description = "Print scores and every verdict as JSON." };
        var command = new Command("evaluate",
            "Prompt adherence on the shapes world: generate held-out prompts (colour × shape × background combinations never seen in training) " +
            "with fixed seeds and judge each image's background colour, object colour, shape and position.")
        {
            model, prompts, seeds, cfg, steps, scheduler, grid, json,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var options = new AdherenceOptions
            {
                Prompts = parse.GetValue(prompts),
                Seeds = parse.GetValue(seeds),
                GuidanceScale = parse.GetValue(cfg),
                Steps = parse.GetValue(steps),
                Scheduler = parse.GetValue(scheduler),
            };
            if (options.Prompts is < 1 or > 40) throw new AsyncDiffusionException($"--prompts is {options.Prompts}; expected 1 to 40 (the held-out combinations).");
            if (options.Seeds < 1) throw new AsyncDiffusionException($"--seeds is {options.Seeds}; expected at least 1.");
            string? gridPath = parse.GetValue(grid);
            string folder = parse.GetValue(model) ?? BuiltInModel.Ensure();
            using var loaded = ModelFolder.Open(folder);
            using var pipeline = new StableDiffusionPipeline(loaded);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var report = PromptAdherence.Evaluate(pipeline, options);
            if (gridPath is not null)
                EvaluationGrid.Save(report.Samples.Where(s => s.Seed == options.FirstSeed).ToList(), gridPath);
            if (parse.GetValue(json)) WriteEvaluationJson(cli.Output, loaded, report);
            else WriteEvaluation(cli.Console, loaded, report, clock.Elapsed);
            return 0;
        }));
        return command;
    }

    private static void WriteEvaluation(IAnsiConsole console, ModelFolder model, AdherenceReport r, TimeSpan elapsed)
    {
        var o = r.Options;
        console.MarkupLine($"[bold]{Markup.Escape(model.Name)}[/]: {o.Prompts} held-out prompts × {o.Seeds} seeds, {o.Steps} steps, " +
            $"{Markup.Escape(r.Scheduler)}, CFG {r.GuidanceScale:0.##} ({elapsed.TotalSeconds:F1} s)");
        var table = new Table().Border(TableBorder.Rounded).AddColumn("check").AddColumn(new TableColumn("right").RightAligned());
        table.AddRow("background colour", Percent(r.Background));
        table.AddRow("object colour", Percent(r.ObjectColour));
        table.AddRow("shape", Percent(r.Shape));
        if (r.Position is double position) table.AddRow("position (placed prompts)", Percent(position));
        console.Write(table);
        var byShape = new Table().Border(TableBorder.Rounded).AddColumn("requested shape").AddColumn(new TableColumn("judged as").LeftAligned());
        foreach (var group in r.Samples.GroupBy(s => s.Scene.Main.Shape))
            byShape.AddRow(group.Key, string.Join(", ", group.GroupBy(s => s.Verdict.Shape ?? "nothing").OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}")));
        console.Write(byShape);
    }

    private static string Percent(double rate) => $"{rate * 100:F0} %";

    private static void WriteEvaluationJson(TextWriter output, ModelFolder model, AdherenceReport r)
    {
        var payload = new
        {
            model = model.Path,
            scheduler = r.Scheduler,
            steps = r.Options.Steps,
            cfg = r.GuidanceScale,
            prompts = r.Options.Prompts,
            seeds = r.Options.Seeds,
            scores = new { background = r.Background, object_colour = r.ObjectColour, shape = r.Shape, position = r.Position },
            samples = r.Samples.Select(s => new
            {
                prompt = s.Scene.Caption,
                seed = s.Seed,
                background = s.Verdict.Background,
                object_colour = s.Verdict.ObjectColour,
                shape = s.Verdict.Shape,
                background_right = s.Verdict.BackgroundRight,
                object_colour_right = s.Verdict.ObjectColourRight,
                shape_right = s.Verdict.ShapeRight,
                position_right = s.Verdict.PositionRight,
            }).ToArray(),
        };
        output.WriteLine(JsonSerializer.Serialize(payload, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static Dictionary<string, object?> Describe(ModelFolder m)
    {
        string unetFile = Path.Combine(m.Path, "unet", "model.onnx");
        return new Dictionary<string, object?>
        {
            ["folder"] = m.Path,
            ["pipeline"] = m.PipelineClass,
            ["synthetic"] = m.SyntheticPreset is null ? "no" : $"yes: preset {m.SyntheticPreset}, random weights",
            ["vintage"] = m.Vintage,
            ["scheduler"] = m.SchedulerConfig.ClassName,
            ["prediction_type"] = m.Prediction.ToString(),
            ["tokenizer"] = $"{m.Tokenizer.Vocabulary.Count} tokens, max length {m.Tokenizer.MaxLength}, pad id {m.Tokenizer.PadId}",
            ["text_encoder.input_ids"] = m.TextEncoder.InputIdsType.ToString(),
            ["text_encoder.hidden_size"] = m.TextEncoder.HiddenSize,
            ["text_encoder.pooler_output"] = m.TextEncoder.HasPooler,
            ["text_encoder.parameters"] = OnnxGraphInfo.ParameterCount(Path.Combine(m.Path, "text_encoder", "model.onnx")),
            ["unet.sample"] = m.UNet.SampleType.ToString(),
            ["unet.timestep"] = $"{m.UNet.TimestepType} ({m.UNet.Timestep})",
            ["unet.latent_channels"] = m.LatentChannels,
            ["unet.cross_attention_dim"] = m.UNet.CrossAttentionDim,
            ["unet.external_data"] = string.Join(", ", OnnxGraphInfo.ExternalDataFiles(unetFile)),
            ["unet.parameters"] = OnnxGraphInfo.ParameterCount(unetFile),
            ["vae.scale_factor"] = m.VaeScaleFactor,
            ["vae.scaling_factor"] = m.ScalingFactor,
            ["vae_decoder.parameters"] = OnnxGraphInfo.ParameterCount(Path.Combine(m.Path, "vae_decoder", "model.onnx")),
            ["vae_encoder"] = m.VaeEncoder is null ? "absent (no img2img)" : m.VaeEncoder.Output.ToString(),
        };
    }
}
