using System.CommandLine;
using System.Text.Json;
using AsyncDiffusion.Evaluation;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion models evaluate</c>: prompt adherence of a shapes-world model on held-out prompts, judged by <see cref="ShapeJudge"/>.</summary>
public static class EvaluateCommand
{
    public static Command Create(CliContext cli)
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
}
