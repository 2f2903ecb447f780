using System.CommandLine;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Pipelines;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion tune --latency-cap-ms X</c>: pick streams × batch by measurement and save it.</summary>
public static class TuneCommand
{
    public static Command Create(CliContext cli)
    {
        var cap = new Option<double>("--latency-cap-ms") { Description = "Highest acceptable p99 latency per request, in ms.", Required = true };
        var model = new Option<string?>("--model") { Description = CheckpointOptions.ModelHelp };
        var synthetic = new Option<string?>("--synthetic") { Description = "A synthetic preset instead (tiny or sd15)." };
        var size = new Option<string?>("--size") { Description = "WIDTHxHEIGHT." };
        var steps = new Option<int>("--steps") { Description = "Steps per image.", DefaultValueFactory = _ => 20 };
        var requests = new Option<int>("--requests") { Description = "Measured requests per configuration (at least 2 × concurrency).", DefaultValueFactory = _ => 8 };
        var decoder = new Option<string>("--decoder") { Description = "vae or taesd.", DefaultValueFactory = _ => "vae" };
        var maxStreams = new Option<int>("--max-streams") { Description = "Largest stream count to try.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var maxBatch = new Option<int>("--max-batch") { Description = "Largest batch to try.", DefaultValueFactory = _ => 8 };
        var output = new Option<string?>("--out") { Description = $"Where to save the result (default {TunedConfig.DefaultPath})." };
        var command = new Command("tune", "Find the best streams × batch under a p99 latency cap by measuring, and save it for benchmark and serve (--config).")
        {
            cap, model, synthetic, size, steps, requests, decoder, maxStreams, maxBatch, output,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            double capMs = parse.GetValue(cap);
            if (!(capMs > 0)) throw new AsyncDiffusionException($"--latency-cap-ms is {capMs}; expected a positive number of milliseconds.");
            string folder = BenchmarkCommand.ResolveModel(parse.GetValue(model), parse.GetValue(synthetic), cli);
            var (w, h) = GenerateCommand.ParseSize(parse.GetValue(size), null, null);
            var settings = new BenchmarkSettings
            {
                ModelFolder = folder,
                Engine = new EngineOptions(),
                Request = new GenerationRequest
                {
                    Prompt = "a photo of an astronaut riding a horse on mars",
                    Steps = parse.GetValue(steps),
                    Width = w,
                    Height = h,
                    Seed = 1,
                    Scheduler = "Euler a",
                    Decoder = BenchmarkCommand.ParseDecoder(parse.GetValue(decoder)!),
                },
                Requests = Math.Max(1, parse.GetValue(requests)),
                Probe = false,
            };
            var result = Tuner.Run(settings, capMs, Math.Max(1, parse.GetValue(maxStreams)), Math.Max(1, parse.GetValue(maxBatch)), m => cli.Error.WriteLine(m));

            var table = new Table().Border(TableBorder.Rounded).Title("[bold]tuning path[/]").AddColumn("streams").AddColumn("batch").AddColumn("concurrency")
                .AddColumn("heavy calls").AddColumn(new TableColumn("images/min").RightAligned()).AddColumn(new TableColumn("p99 s").RightAligned()).AddColumn("verdict");
            foreach (var s in result.Path)
                table.AddRow(s.Streams.ToString(), s.MaxBatch.ToString(), s.Concurrency.ToString(), s.ExclusiveCompute ? "turns" : "overlap", $"{s.ImagesPerMinute:F2}", $"{s.P99Ms / 1000:F2}", s.Verdict);
            cli.Console.Write(table);
            cli.Console.MarkupLine($"Stopped: {Markup.Escape(result.StopReason)}.");
            if (result.Chosen is not { } chosen) return 1;
            var plan = settings.Request;
            var tuned = new TunedConfig(chosen.Streams, chosen.MaxBatch, chosen.Concurrency, capMs, chosen.ImagesPerMinute, chosen.P99Ms, folder,
                plan.Width is null ? "native" : $"{plan.Width}x{plan.Height}", plan.Steps, MachineDescription.Current().Cpu, DateTime.UtcNow, chosen.ExclusiveCompute);
            string path = parse.GetValue(output) ?? TunedConfig.DefaultPath;
            tuned.Save(path);
            cli.Console.MarkupLine($"Chose [bold]{chosen.Streams} stream(s), batch {chosen.MaxBatch}{(chosen.ExclusiveCompute ? "" : ", heavy calls overlapping")}[/] ({chosen.ImagesPerMinute:F2} images/min, p99 {chosen.P99Ms / 1000:F2} s); saved to {Markup.Escape(path)}.");
            return 0;
        }));
        return command;
    }
}
