using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Pipelines;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion benchmark</c> and <c>asyncdiffusion probe</c>: benchmark_app for Stable Diffusion.</summary>
public static class BenchmarkCommand
{
    public static Command Create(CliContext cli)
    {
        var model = new Option<string?>("--model") { Description = CheckpointOptions.ModelHelp };
        var checkpoint = new CheckpointOptions();
        var synthetic = new Option<string?>("--synthetic") { Description = "Use a synthetic preset instead (tiny or sd15), built into the cache on first use." };
        var compare = new Option<string?>("--compare") { Description = "A second model folder (e.g. its int8 copy) measured the same way in the same run, with a side-by-side table." };
        var requests = new Option<int>("--requests") { Description = "Measured requests.", DefaultValueFactory = _ => 8 };
        var concurrency = new Option<string>("--concurrency") { Description = "Clients in a closed loop (comma list for --sweep).", DefaultValueFactory = _ => "1" };
        var mode = new Option<string>("--mode") { Description = "sync (one request at a time: the baseline) or async.", DefaultValueFactory = _ => "async" };
        var streams = new Option<string?>("--streams") { Description = "UNet streams (comma list for --sweep; default: the automatic choice for this machine, 1 in a sweep)." };
        var maxBatch = new Option<string?>("--max-batch") { Description = "Most images per UNet call (comma list for --sweep; default: the automatic choice, 1 in a sweep)." };
        var overlap = new Option<bool>("--overlap-compute") { Description = "Let the stages' ONNX Runtime calls overlap freely (no turns, no spinning) instead of one heavy call per stream." };
        var size = new Option<string?>("--size") { Description = "WIDTHxHEIGHT (default: the model's native size)." };
        var steps = new Option<int>("--steps") { Description = "Denoising steps per image.", DefaultValueFactory = _ => 20 };
        var scheduler = new Option<string>("--scheduler") { Description = "Scheduler name.", DefaultValueFactory = _ => "Euler a" };
        var mixed = new Option<bool>("--mixed") { Description = "Vary prompts and schedulers (Euler a, DPM++ 2M, Euler, DDIM) across requests." };
        var decoder = new Option<string>("--decoder") { Description = "vae or taesd.", DefaultValueFactory = _ => "vae" };
        var cfg = new Option<double>("--cfg") { Description = "Guidance scale.", DefaultValueFactory = _ => 7.5 };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up requests (the first is the cold latency).", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads in total (0: one per core).", DefaultValueFactory = _ => 0 };
        var noProbe = new Option<bool>("--no-probe") { Description = "Skip the MatMul/Conv peak probe." };
        var sweep = new Option<bool>("--sweep") { Description = "Run every combination of --streams, --max-batch and --concurrency (plus the sync baseline)." };
        var config = new Option<string?>("--config") { Description = "A tuned configuration from 'asyncdiffusion tune' (streams, batch, concurrency)." };
        var hint = new Option<string?>("--hint") { Description = "latency (1 stream, batch 1) or throughput (the tuned configuration when present, else a measured default)." };
        var chart = new Option<string?>("--chart") { Description = "With --sweep: write a PNG chart of throughput against p99 latency here (default sweep.png)." };
        var json = new Option<string?>("--json") { Description = "Write the report(s) as JSON to this file." };
        var markdown = new Option<string?>("--markdown") { Description = "Write the report(s) as Markdown to this file." };
        var unfused = new Option<bool>("--unfused-attention") { Description = "Run attention as exported (MatMul, Softmax, MatMul) instead of ONNX Runtime's fused MultiHeadAttention." };
        var compareAttention = new Option<bool>("--compare-attention") { Description = "Measure each configuration twice in this run, with fused attention and as exported, and print them side by side." };
        var coldLoad = new Option<bool>("--cold-load") { Description = "Load the model into an empty optimised-graph cache first, so the report shows the cold and the warm load time." };
        var budget = new Option<string?>("--memory-budget") { Description = GenerateCommand.MemoryBudgetHelp };
        var versusSync = new Option<int>("--versus-sync")
        {
            Description = "Measure the async configuration against sync mode N times each in this run, taking turns (sync first, then async first, …) so drift hits both alike, and print the ratio per round.",
        };
        var url = new Option<string?>("--url") { Description = "Drive running servers instead (comma list, e.g. http://node1:7860,http://node2:7860): requests go round-robin over the native jobs API." };

        var command = new Command("benchmark", "Measure latency (p50/p90/p99, per stage), throughput (images/min), memory, CPU use and achieved GFLOP/s.")
        {
            model, synthetic, compare, requests, concurrency, mode, streams, maxBatch, overlap, size, steps, scheduler, mixed, decoder, cfg, warmup, threads, noProbe, sweep, config, hint, chart, json, markdown, url,
            unfused, compareAttention, coldLoad, budget, versusSync,
        };
        checkpoint.AddTo(command);
        command.SetAction(parse => cli.Guard(() =>
        {
            if (parse.GetValue(url) is { } urlList) return RunOverHttp(cli, urlList, parse.GetValue(size), parse.GetValue(steps), parse.GetValue(scheduler)!, parse.GetValue(cfg),
                Positive(parse.GetValue(requests), "--requests"), IntList(parse.GetValue(concurrency)!, "--concurrency")[0], Math.Max(0, parse.GetValue(warmup)), parse.GetValue(json));
            var import = checkpoint.Import(parse, parse.GetValue(model));
            string folder = ResolveModel(parse.GetValue(model), parse.GetValue(synthetic), cli, import);
            var (w, h) = GenerateCommand.ParseSize(parse.GetValue(size), null, null);
            var request = new GenerationRequest
            {
                Prompt = "a photo of an astronaut riding a horse on mars",
                Steps = parse.GetValue(steps),
                Width = w,
                Height = h,
                GuidanceScale = parse.GetValue(cfg),
                Scheduler = parse.GetValue(scheduler),
                Seed = 1,
                Decoder = ParseDecoder(parse.GetValue(decoder)!),
            };
            var baseSettings = new BenchmarkSettings
            {
                ModelFolder = folder,
                Engine = new EngineOptions(),
                Request = request,
                Requests = Positive(parse.GetValue(requests), "--requests"),
                Warmup = Math.Max(1, parse.GetValue(warmup)),
                Mixed = parse.GetValue(mixed),
                Probe = !parse.GetValue(noProbe),
                ColdLoad = parse.GetValue(coldLoad),
            };
            var engineMode = parse.GetValue(mode)!.ToLowerInvariant() switch
            {
                "sync" => EngineMode.Sync,
                "async" => EngineMode.Async,
                var other => throw new AsyncDiffusionException($"--mode '{other}' is not known; expected sync or async."),
            };
            int totalThreads = parse.GetValue(threads);
            var configs = new List<(EngineOptions Engine, int Concurrency)>();
            bool exclusive = !parse.GetValue(overlap);
            var streamList = IntList(parse.GetValue(streams) ?? "1", "--streams");
            var batchList = IntList(parse.GetValue(maxBatch) ?? "1", "--max-batch");
            var concurrencyList = IntList(parse.GetValue(concurrency)!, "--concurrency");
            if (parse.GetValue(sweep))
            {
                configs.Add((new EngineOptions { Mode = EngineMode.Sync, Threads = totalThreads }, 1));
                foreach (int s in streamList) foreach (int b in batchList) foreach (int c in concurrencyList)
                    configs.Add((new EngineOptions { Mode = EngineMode.Async, Streams = s, MaxBatch = b, Threads = totalThreads, MaxJobs = Math.Max(32, 2 * c), ExclusiveCompute = exclusive }, c));
            }
            else if (parse.GetValue(hint) is { } h2 || parse.GetValue(config) is not null)
            {
                var tuned = TunedConfig.Find(parse.GetValue(config));
                bool latency = parse.GetValue(hint)?.ToLowerInvariant() == "latency";
                var options = latency ? EngineOptions.ForHint("latency", Environment.ProcessorCount)
                    : tuned?.ToOptions() ?? EngineOptions.ForHint(parse.GetValue(hint) ?? "throughput", Environment.ProcessorCount);
                int c = latency ? 1 : tuned?.Concurrency ?? options.Streams * options.MaxBatch;
                configs.Add((options with { Threads = totalThreads }, c));
            }
            else if (engineMode == EngineMode.Async && parse.GetValue(streams) is null && parse.GetValue(maxBatch) is null)
            {
                // What serve would pick here.
                var auto = EngineOptions.Automatic(totalThreads > 0 ? totalThreads : Environment.ProcessorCount, TunedConfig.Find(null));
                cli.Error.WriteLine($"Engine: {auto.Rationale}.");
                configs.Add((auto with { MaxJobs = Math.Max(32, 2 * concurrencyList[0]), ExclusiveCompute = exclusive }, concurrencyList[0]));
            }
            else configs.Add((new EngineOptions { Mode = engineMode, Streams = streamList[0], MaxBatch = batchList[0], Threads = totalThreads, MaxJobs = Math.Max(32, 2 * concurrencyList[0]), ExclusiveCompute = exclusive }, concurrencyList[0]));

            if (parse.GetValue(budget) is { } budgetText)
            {
                // Planned for the most images one UNet call may hold in the measured configurations.
                int imagesAtOnce = configs.Max(c => c.Engine.Mode == EngineMode.Sync ? 1 : c.Engine.Streams * c.Engine.MaxBatch);
                var plan = MemoryBudget.PlanBeforeLoading(folder, w, h, MemoryBudget.Parse(budgetText), imagesAtOnce);
                cli.Error.WriteLine(plan.Describe());
                configs = configs.Select(c => (c.Engine with { Memory = plan.Policy }, c.Concurrency)).ToList();
            }

            int versusRounds = parse.GetValue(versusSync);
            if (versusRounds != 0)
            {
                if (versusRounds < 1 || versusRounds > 50) throw new AsyncDiffusionException($"--versus-sync is {versusRounds}; expected 1 to 50 rounds.");
                if (engineMode == EngineMode.Sync || parse.GetValue(sweep) || parse.GetValue(compare) is not null || parse.GetValue(compareAttention))
                    throw new AsyncDiffusionException("--versus-sync measures one async configuration against sync mode; give it without --mode sync, --sweep, --compare and --compare-attention.");
                var (asyncEngine, clients) = configs[0];
                asyncEngine = asyncEngine with { FuseAttention = !parse.GetValue(unfused) };
                var syncEngine = new EngineOptions { Mode = EngineMode.Sync, Threads = totalThreads, MaxJobs = asyncEngine.MaxJobs, Memory = asyncEngine.Memory, FuseAttention = asyncEngine.FuseAttention };
                var turns = new List<(EngineOptions Engine, int Concurrency)>();
                for (int round = 0; round < versusRounds; round++)
                    turns.AddRange(round % 2 == 0 ? [(syncEngine, clients), (asyncEngine, clients)] : [(asyncEngine, clients), (syncEngine, clients)]);
                var measured = RunAll(cli, baseSettings with { Engine = asyncEngine }, turns, null);
                var versus = VersusSync.From(measured);
                WriteVersusSync(cli.Console, versus);
                if (parse.GetValue(json) is { } versusJson) File.WriteAllText(versusJson, JsonSerializer.Serialize(versus, new JsonSerializerOptions { WriteIndented = true }));
                if (parse.GetValue(markdown) is { } versusMd) File.WriteAllText(versusMd, Markdown(measured));
                return 0;
            }

            string? compareFolder = parse.GetValue(compare);
            if (compareFolder is not null && !Directory.Exists(compareFolder))
                throw new AsyncDiffusionException($"--compare '{compareFolder}' is not a folder; expected a second diffusers-ONNX model folder.");
            bool attentionComparison = parse.GetValue(compareAttention);
            if (attentionComparison && (compareFolder is not null || parse.GetValue(unfused)))
                throw new AsyncDiffusionException("--compare-attention measures fused and unfused attention itself; give it without --compare and --unfused-attention.");
            // With --compare-attention the graph as exported is the baseline and fused attention the compared run, so the ratios read "fused is N× faster".
            if (parse.GetValue(unfused) || attentionComparison)
                configs = configs.Select(c => (c.Engine with { FuseAttention = false }, c.Concurrency)).ToList();
            var reports = RunAll(cli, attentionComparison ? baseSettings with { Variant = "attention as exported" } : baseSettings, configs, null);
            if (compareFolder is not null || attentionComparison)
            {
                var compared = attentionComparison
                    ? RunAll(cli, baseSettings with { Variant = "fused attention" }, configs.Select(c => (c.Engine with { FuseAttention = true }, c.Concurrency)).ToList(), reports[0].Probe)
                    : RunAll(cli, baseSettings with { ModelFolder = compareFolder! }, configs, reports[0].Probe);
                WriteComparison(cli.Console, reports, compared);
                if (parse.GetValue(json) is { } compareJson)
                    File.WriteAllText(compareJson, JsonSerializer.Serialize(new { model = reports, compare = compared }, new JsonSerializerOptions { WriteIndented = true }));
                if (parse.GetValue(markdown) is { } compareMd) File.WriteAllText(compareMd, Markdown([.. reports, .. compared]));
                return 0;
            }
            if (reports.Count > 1)
            {
                WriteSweep(cli.Console, reports);
                string chartPath = parse.GetValue(chart) ?? "sweep.png";
                bool labelled = SweepChart.Save(reports, chartPath);
                cli.Console.MarkupLine($"Chart: {Markup.Escape(chartPath)}{(labelled ? "" : " (no TrueType font found: the chart has no labels; the table above has the numbers)")}");
            }
            if (parse.GetValue(json) is { } jsonFile)
                File.WriteAllText(jsonFile, JsonSerializer.Serialize(reports.Count == 1 ? (object)reports[0] : reports, new JsonSerializerOptions { WriteIndented = true }));
            if (parse.GetValue(markdown) is { } mdFile) File.WriteAllText(mdFile, Markdown(reports));
            return 0;
        }));
        return command;
    }

    private static int RunOverHttp(CliContext cli, string urlList, string? size, int steps, string scheduler, double cfg, int requests, int concurrency, int warmup, string? json)
    {
        var urls = urlList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(u => u.TrimEnd('/')).ToArray();
        foreach (var u in urls)
            if (!Uri.TryCreate(u, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
                throw new AsyncDiffusionException($"--url '{u}' is not an http(s) URL; expected e.g. http://127.0.0.1:7860,http://10.0.0.2:7860.");
        if (urls.Length == 0) throw new AsyncDiffusionException("--url is empty; expected one or more comma-separated server URLs.");
        var (w, h) = GenerateCommand.ParseSize(size, null, null);
        var body = new Dictionary<string, object?> { ["prompt"] = "a photo of an astronaut riding a horse on mars", ["steps"] = steps, ["scheduler"] = scheduler, ["guidance_scale"] = cfg, ["seed"] = 1 };
        if (w is int width && h is int height) (body["width"], body["height"]) = (width, height);
        HttpBenchmarkReport report;
        try
        {
            report = HttpBenchmark.Run(urls, body, requests, concurrency, warmup, steps, w is null ? "native" : $"{w}x{h}", m => cli.Error.WriteLine(m));
        }
        catch (HttpRequestException e)
        {
            throw new AsyncDiffusionException($"a server in --url could not be reached: {e.Message}");
        }
        HttpBenchmark.Write(cli.Console, report);
        if (json is not null) File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }


    private static List<BenchmarkReport> RunAll(CliContext cli, BenchmarkSettings settings, List<(EngineOptions Engine, int Concurrency)> configs, ProbeResult? probe)
    {
        var reports = new List<BenchmarkReport>();
        foreach (var (engine, c) in configs)
        {
            var report = BenchmarkRunner.Run(settings with { Engine = engine with { OptimizedModelCache = Onnx.OptimizedModelCache.DefaultFolder }, Concurrency = c, Probe = settings.Probe && probe is null && reports.Count == 0 },
                message => cli.Error.WriteLine(message));
            var known = probe ?? (reports.Count > 0 ? reports[0].Probe : null);
            if (report.Probe is null && known is not null) report = report with { Probe = known, Rates = Recompute(report.Rates, known) };
            reports.Add(report);
            WriteReport(cli.Console, report);
        }
        return reports;
    }

    /// <summary>
    /// The same configurations on two models (e.g. fp32 and int8): per step, per image, throughput
    /// and peak memory side by side, with a ratio row (how many times faster the second model is; its peak memory as a fraction of the first's).
    /// </summary>
    private static void WriteComparison(IAnsiConsole console, List<BenchmarkReport> a, List<BenchmarkReport> b)
    {
        var t = new Table().Border(TableBorder.Rounded).Title("[bold]comparison[/]").AddColumn("config").AddColumn("model")
            .AddColumn(new TableColumn("UNet ms/step").RightAligned()).AddColumn(new TableColumn("UNet s/image").RightAligned())
            .AddColumn(new TableColumn("s/image (p50)").RightAligned()).AddColumn(new TableColumn("images/min").RightAligned())
            .AddColumn(new TableColumn("peak RSS MiB").RightAligned());
        for (int i = 0; i < a.Count; i++)
        {
            foreach (var r in new[] { a[i], b[i] })
                t.AddRow(Label(r), Markup.Escape(r.Variant ?? Path.GetFileName(r.Model.TrimEnd(Path.DirectorySeparatorChar))), $"{r.Stages.UNetStepMs:F0}", $"{r.Stages.UNetPerImageMs / 1000:F2}",
                    $"{r.Latency.P50 / 1000:F2}", $"{r.ImagesPerMinute:F2}", $"{r.PeakRssBytes / 1048576.0:F0}");
            t.AddRow("", "[bold]ratio[/]", $"{Ratio(a[i].Stages.UNetStepMs, b[i].Stages.UNetStepMs)} faster",
                $"{Ratio(a[i].Stages.UNetPerImageMs, b[i].Stages.UNetPerImageMs)} faster", $"{Ratio(a[i].Latency.P50, b[i].Latency.P50)} faster",
                $"{Ratio(b[i].ImagesPerMinute, a[i].ImagesPerMinute)}", $"{(double)b[i].PeakRssBytes / Math.Max(1, a[i].PeakRssBytes):F2}×");
        }
        console.Write(t);
    }

    private static string Ratio(double numerator, double denominator) => denominator > 0 ? $"{numerator / denominator:F2}×" : "–";

    public static Command CreateProbe(CliContext cli)
    {
        var threads = new Option<int>("--threads") { Description = "Threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var attention = new Option<bool>("--attention") { Description = "Also time attention at SD 1.5's shapes as exported, as fused MultiHeadAttention and as packed Attention." };
        var roofline = new Option<bool>("--roofline") { Description = "With --model: time the model's UNet step against the per-operator roofline, the probe's chains timed around each call." };
        var model = new Option<string?>("--model") { Description = "With --attention: compare this model's whole UNet step, attention as exported against fused, the two taking turns. With --roofline: the model whose UNet step is measured." };
        var size = new Option<string>("--size") { Description = "With --model: the image size (the UNet sees 1/8 of it).", DefaultValueFactory = _ => "256x256" };
        var rounds = new Option<int>("--rounds") { Description = "With --model: rounds of one UNet call each.", DefaultValueFactory = _ => 6 };
        var command = new Command("probe", "Measure this machine's MatMul, 3x3 Conv and attention GFLOP/s through ONNX Runtime at SD's shapes (the yardstick for '% of peak') and the cores' own FMA ceiling, and say what holds the rates back.")
        {
            threads, json, attention, roofline, model, size, rounds,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            if (parse.GetValue(model) is { } folder)
            {
                if (parse.GetValue(attention) == parse.GetValue(roofline))
                    throw new AsyncDiffusionException("--model goes with either --attention (the UNet step with fused against exported attention) or --roofline (the UNet step against the per-operator roofline).");
                var (w, h) = GenerateCommand.ParseSize(parse.GetValue(size), null, null);
                if (!File.Exists(Path.Combine(folder, "unet", "model.onnx"))) throw new AsyncDiffusionException($"--model '{folder}' has no unet/model.onnx; expected a diffusers-ONNX model folder.");
                if (w is not int width || h is not int height || width % 64 != 0 || height % 64 != 0 || width <= 0 || height <= 0)
                    throw new AsyncDiffusionException($"--size '{parse.GetValue(size)}' must be WIDTHxHEIGHT in multiples of 64, e.g. 256x256.");
                var sessionSettings = new Onnx.SessionSettings { IntraOpThreads = parse.GetValue(threads), OptimizedModelCache = Onnx.OptimizedModelCache.DefaultFolder };
                if (parse.GetValue(roofline))
                {
                    var measured = UNetRoofline.Run(folder, width, height, sessionSettings, Positive(parse.GetValue(rounds), "--rounds"));
                    if (parse.GetValue(json)) cli.Output.WriteLine(JsonSerializer.Serialize(measured, new JsonSerializerOptions { WriteIndented = true }));
                    else WriteRoofline(cli.Console, measured);
                    return 0;
                }
                var comparison = UNetAttentionComparison.Run(folder, width, height, sessionSettings, Positive(parse.GetValue(rounds), "--rounds"));
                if (parse.GetValue(json)) cli.Output.WriteLine(JsonSerializer.Serialize(comparison, new JsonSerializerOptions { WriteIndented = true }));
                else cli.Console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"UNet step, {comparison.Size}, batch 2, {comparison.Rounds} rounds taking turns: as exported [bold]{comparison.ExportedMedianMs:F0} ms[/], fused ({comparison.FusedAttentions} attentions) [bold]{comparison.FusedMedianMs:F0} ms[/] (medians); ratio median [bold]{comparison.MedianRatio:F3}×[/], range {comparison.LowestRatio:F3}–{comparison.HighestRatio:F3}×"));
                return 0;
            }
            if (parse.GetValue(roofline)) throw new AsyncDiffusionException("--roofline needs --model: the diffusers-ONNX model folder whose UNet step is measured.");
            if (parse.GetValue(attention))
            {
                var timings = AttentionProbe.Run(parse.GetValue(threads));
                if (parse.GetValue(json)) cli.Output.WriteLine(JsonSerializer.Serialize(timings, new JsonSerializerOptions { WriteIndented = true }));
                else WriteAttention(cli.Console, timings);
                return 0;
            }
            var machine = MachineDescription.Current();
            var probe = MachineProbe.Run(parse.GetValue(threads));
            if (parse.GetValue(json)) cli.Output.WriteLine(JsonSerializer.Serialize(new { machine, probe, findings = probe.Findings() }, new JsonSerializerOptions { WriteIndented = true }));
            else
            {
                cli.Console.MarkupLine($"{Markup.Escape(machine.Cpu)}, {machine.Cores} cores, {string.Join(" ", machine.Isa)}, ONNX Runtime {machine.OnnxRuntime}");
                cli.Console.MarkupLine($"{probe.Threads} thread(s): MatMul 4096×320·320×1280 [bold]{probe.MatMulGflops:F0} GFLOP/s[/], Conv 3×3 320→320 @64×64 [bold]{probe.Conv3x3Gflops:F0} GFLOP/s[/], fused self-attention 2×4096 tokens×320 [bold]{probe.AttentionGflops:F0} GFLOP/s[/]");
                foreach (var line in probe.Findings()) cli.Console.MarkupLine(Markup.Escape(line));
            }
            return 0;
        }));
        return command;
    }

    private static void WriteRoofline(IAnsiConsole console, UNetRoofline r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title(string.Create(CultureInfo.InvariantCulture,
                $"[bold]UNet step {r.Size}, batch {r.Batch}: {r.ConvGFlop:F0} GFLOP conv, {r.MatMulGFlop - r.AttentionGFlop:F0} linear, {r.AttentionGFlop:F0} attention[/]"))
            .AddColumn("round").AddColumn(new TableColumn("call ms").RightAligned()).AddColumn(new TableColumn("Conv / MatMul / attention GFLOP/s around it").RightAligned())
            .AddColumn(new TableColumn("ms at those rates").RightAligned()).AddColumn(new TableColumn("% of per-operator roofline").RightAligned());
        for (int i = 0; i < r.Rounds.Count; i++)
        {
            var x = r.Rounds[i];
            t.AddRow((i + 1).ToString(CultureInfo.InvariantCulture), x.CallMilliseconds.ToString("F0", CultureInfo.InvariantCulture),
                string.Create(CultureInfo.InvariantCulture, $"{x.ConvGflops:F0} / {x.MatMulGflops:F0} / {x.AttentionGflops:F0}"),
                x.IdealMilliseconds.ToString("F0", CultureInfo.InvariantCulture), x.Percent.ToString("F0", CultureInfo.InvariantCulture));
        }
        console.Write(t);
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"Per-operator roofline, whole call: median [bold]{r.MedianPercent:F0} %[/] (range {r.LowestPercent:F0}–{r.HighestPercent:F0} %), median call {r.MedianCallMilliseconds:F0} ms"));
    }

    private static void WriteAttention(IAnsiConsole console, IReadOnlyList<AttentionTiming> timings)
    {
        var t = new Table().Border(TableBorder.Rounded).Title("[bold]attention, batch 2, 8 heads, Q/K/V projections included (ms, median)[/]")
            .AddColumn("shape").AddColumn(new TableColumn("queries × keys").RightAligned()).AddColumn(new TableColumn("as exported").RightAligned())
            .AddColumn(new TableColumn("MultiHeadAttention").RightAligned()).AddColumn(new TableColumn("speed-up").RightAligned())
            .AddColumn(new TableColumn("Attention (packed)").RightAligned());
        foreach (var a in timings)
            t.AddRow(a.Shape, $"{a.Queries} × {a.Keys}", $"{a.ExportedMs:F1}", $"{a.MultiHeadMs:F1}", $"{a.MultiHeadSpeedup:F2}×", a.PackedMs is double p ? $"{p:F1}" : "–");
        console.Write(t);
    }

    private static ComponentRate[] Recompute(ComponentRate[] rates, ProbeResult? probe) =>
        rates.Select(r => r with { PercentOfPeak = probe is null ? null : 100 * r.Gflops / probe.PeakGflops }).ToArray();

    internal static DecoderKind ParseDecoder(string name) => name.ToLowerInvariant() switch
    {
        "vae" => DecoderKind.Vae,
        "taesd" => DecoderKind.Taesd,
        var other => throw new AsyncDiffusionException($"--decoder '{other}' is not known; expected vae or taesd."),
    };

    /// <summary>--model (an ONNX folder, or a checkpoint converted through the cache) or a synthetic preset.</summary>
    internal static string ResolveModel(string? model, string? synthetic, CliContext cli, Models.Checkpoints.CheckpointImport? import = null)
    {
        if (model is not null && synthetic is not null) throw new AsyncDiffusionException("Give either --model or --synthetic, not both.");
        if (model is not null && Models.Checkpoints.CheckpointImport.IsCheckpoint(model))
            return CheckpointOptions.ResolveImport(import ?? new Models.Checkpoints.CheckpointImport { Source = model }, cli, showProgress: true)!.Folder;
        if (model is not null) return model;
        var preset = SyntheticPreset.Parse(synthetic ?? "tiny");
        string folder = UserCache.Folder(Path.Combine("models", $"{preset.Name}-synthetic-v1"));
        if (!File.Exists(Path.Combine(folder, "model_index.json")))
        {
            cli.Error.WriteLine($"Writing the synthetic {preset.Name} model to {folder}…");
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            SyntheticModelWriter.Write(folder, preset);
        }
        return folder;
    }

    private static int Positive(int value, string name) => value >= 1 ? value : throw new AsyncDiffusionException($"{name} is {value}; expected at least 1.");

    private static int[] IntList(string text, string name)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, out int v) || v < 1) throw new AsyncDiffusionException($"{name} '{text}' is not a list of positive integers (e.g. 1,2,4).");
            values.Add(v);
        }
        return values.Count > 0 ? values.ToArray() : throw new AsyncDiffusionException($"{name} is empty; expected e.g. 1 or 1,2,4.");
    }

    private static string Label(BenchmarkReport r) => r.Mode == "sync" ? "sync" : $"async S={r.Streams} B={r.MaxBatch} C={r.Concurrency}";

    private static void WriteReport(IAnsiConsole console, BenchmarkReport r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(Label(r))}[/] · {r.Size}, {r.Steps} steps, {Markup.Escape(r.Scheduler)}, {r.Decoder}")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        t.AddRow("throughput", $"{r.ImagesPerMinute:F2} images/min");
        t.AddRow("latency p50 / p90 / p99 / max", $"{r.Latency.P50 / 1000:F2} / {r.Latency.P90 / 1000:F2} / {r.Latency.P99 / 1000:F2} / {r.Latency.Max / 1000:F2} s");
        t.AddRow("queue wait (mean)", $"{r.Stages.QueueWaitMs:F0} ms");
        t.AddRow("text encoder (per request)", $"{r.Stages.TextEncodeMs:F1} ms");
        t.AddRow("UNet per step / per image", $"{r.Stages.UNetStepMs:F0} ms / {r.Stages.UNetPerImageMs / 1000:F2} s");
        t.AddRow("rows per UNet call", $"{r.RowsPerUNetCall:F2}");
        t.AddRow("decode / image encode (per image)", $"{r.Stages.DecodeMs:F0} ms / {r.Stages.ImageEncodeMs:F1} ms");
        foreach (var rate in r.Rates)
            t.AddRow($"{rate.Component}: {rate.GFlopPerCall:F1} GFLOP × {rate.Calls}", $"{rate.Gflops:F0} GFLOP/s{(rate.PercentOfPeak is double p ? $" ({p:F0} % of peak)" : "")}");
        t.AddRow("peak RSS / managed heap", $"{r.PeakRssBytes / 1048576.0:F0} / {r.PeakManagedBytes / 1048576.0:F0} MiB");
        t.AddRow("CPU utilisation", $"{r.CpuUtilisation * 100:F0} %");
        t.AddRow($"model load ({LoadKind(r.Loads)})", $"{r.LoadSeconds:F1} s{UNetLoad(r.Loads)}");
        if (r.ColdLoads is { } cold) t.AddRow($"model load ({LoadKind(cold)})", $"{cold.Sum(l => l.Seconds):F1} s{UNetLoad(cold)}");
        t.AddRow("cold first image", $"{r.ColdLatencyMs / 1000:F2} s");
        if (r.Probe is { } probe) t.AddRow($"machine peak ({probe.Threads} thread(s))", $"{probe.PeakGflops:F0} GFLOP/s (MatMul {probe.MatMulGflops:F0}, Conv {probe.Conv3x3Gflops:F0}, attention {probe.AttentionGflops:F0})");
        if (r.Probe?.Ceiling is { } ceiling) t.AddRow("FMA ceiling", string.Create(CultureInfo.InvariantCulture, $"{ceiling.Gflops:F0} GFLOP/s on {ceiling.Threads} thread(s) ({ceiling.OneThreadGflops:F0} on 1: {ceiling.Scaling:F2} threads' worth)"));
        console.Write(t);
    }

    // Cold: some component was optimised now (and saved); warm: every graph came from the optimised-graph cache.
    private static string LoadKind(IReadOnlyList<Onnx.ModelLoad> loads) =>
        loads.Count == 0 ? "?" : loads.All(l => l.Source == Onnx.ModelLoadSource.CacheHit) ? "warm cache"
        : loads.Any(l => l.Source == Onnx.ModelLoadSource.Optimised) ? "cold, cached now" : "no cache";

    private static string UNetLoad(IReadOnlyList<Onnx.ModelLoad> loads) =>
        loads.FirstOrDefault(l => l.Component == "unet") is { } unet ? $" (UNet {unet.Seconds:F1} s, {unet.FusedAttentions} attentions fused)" : "";

    private static void WriteVersusSync(IAnsiConsole console, VersusSync versus)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(Label(versus.Rounds[0].Async))} against sync[/], {versus.Rounds[0].Async.Concurrency} client(s)")
            .AddColumn("round").AddColumn(new TableColumn("sync images/min").RightAligned()).AddColumn(new TableColumn("async images/min").RightAligned())
            .AddColumn(new TableColumn("× sync").RightAligned()).AddColumn(new TableColumn("p50 sync / async s").RightAligned())
            .AddColumn(new TableColumn("peak RSS sync / async MiB").RightAligned());
        for (int i = 0; i < versus.Rounds.Count; i++)
        {
            var (s, a) = (versus.Rounds[i].Sync, versus.Rounds[i].Async);
            t.AddRow($"{i + 1}", $"{s.ImagesPerMinute:F3}", $"{a.ImagesPerMinute:F3}", $"{versus.Rounds[i].ThroughputRatio:F3}",
                $"{s.Latency.P50 / 1000:F2} / {a.Latency.P50 / 1000:F2}", $"{s.PeakRssBytes / 1048576.0:F0} / {a.PeakRssBytes / 1048576.0:F0}");
        }
        console.Write(t);
        console.MarkupLine($"async ÷ sync throughput: median {versus.MedianThroughputRatio:F3} (range {versus.MinThroughputRatio:F3}–{versus.MaxThroughputRatio:F3}); " +
            $"p50 latency async ÷ sync: median {versus.MedianLatencyRatio:F3}.");
    }

    private static void WriteSweep(IAnsiConsole console, List<BenchmarkReport> reports)
    {
        var baseline = reports.FirstOrDefault(r => r.Mode == "sync");
        var t = new Table().Border(TableBorder.Rounded).Title("[bold]sweep[/]").AddColumn("config").AddColumn(new TableColumn("images/min").RightAligned())
            .AddColumn(new TableColumn("× sync").RightAligned()).AddColumn(new TableColumn("p50 s").RightAligned()).AddColumn(new TableColumn("p99 s").RightAligned())
            .AddColumn(new TableColumn("peak RSS MiB").RightAligned());
        foreach (var r in reports)
            t.AddRow(Label(r), $"{r.ImagesPerMinute:F2}", baseline is null ? "" : $"{r.ImagesPerMinute / baseline.ImagesPerMinute:F2}",
                $"{r.Latency.P50 / 1000:F2}", $"{r.Latency.P99 / 1000:F2}", $"{r.PeakRssBytes / 1048576.0:F0}");
        console.Write(t);
    }

    internal static string Markdown(IReadOnlyList<BenchmarkReport> reports)
    {
        var sb = new StringBuilder();
        var m = reports[0].Machine;
        sb.AppendLine($"Machine: {m.Cpu}, {m.Cores} cores ({string.Join(", ", m.Isa)}), {m.Os}, ONNX Runtime {m.OnnxRuntime}.");
        if (reports[0].Probe is { } p) sb.AppendLine($"Measured peak ({p.Threads} thread(s)): MatMul {p.MatMulGflops:F0} GFLOP/s, Conv 3×3 {p.Conv3x3Gflops:F0} GFLOP/s.");
        sb.AppendLine();
        sb.AppendLine("| config | size | steps | decoder | images/min | p50 s | p99 s | UNet ms/step | UNet GFLOP/s (% peak) | peak RSS MiB |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in reports)
        {
            var unet = r.Rates[0];
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Label(r)} | {r.Size} | {r.Steps} | {r.Decoder} | {r.ImagesPerMinute:F2} | {r.Latency.P50 / 1000:F2} | {r.Latency.P99 / 1000:F2} | {r.Stages.UNetStepMs:F0} | {unet.Gflops:F0} ({unet.PercentOfPeak:F0} %) | {r.PeakRssBytes / 1048576.0:F0} |"));
        }
        return sb.ToString();
    }
}
