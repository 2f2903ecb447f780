using AsyncDiffusion.Engine;

namespace AsyncDiffusion.Benchmarking;

/// <summary>One measured configuration on the tuner's path (<c>ExclusiveCompute</c>: heavy calls taking turns, the default, or overlapping freely).</summary>
public sealed record TuningStep(int Streams, int MaxBatch, int Concurrency, double ImagesPerMinute, double P99Ms, string Verdict, bool ExclusiveCompute = true);

public sealed record TuningResult(IReadOnlyList<TuningStep> Path, TuningStep? Chosen, string StopReason);

/// <summary>
/// Finds the best streams × batch configuration under a p99 latency cap by measuring, not
/// guessing: start from the latency-optimal configuration (one stream, batch 1), try raising the
/// batch and the streams, move to the candidate with the most throughput that keeps p99 under
/// the cap, and stop when no candidate gains at least <see cref="MinimumGain"/>. Last, the chosen
/// streams × batch is measured once more with heavy calls overlapping freely (no turns, no
/// spinning), kept only if that gains as much: whether overlap pays depends on the machine.
/// </summary>
public static class Tuner
{
    public const double MinimumGain = 0.05;

    public static TuningResult Run(BenchmarkSettings settings, double latencyCapMs, int maxStreams, int maxBatch, Action<string>? log = null)
    {
        log ??= _ => { };
        var path = new List<TuningStep>();
        var seen = new Dictionary<(int, int, bool), TuningStep>();
        bool probe = settings.Probe;

        TuningStep Measure(int streams, int batch, string why, bool turns = true)
        {
            if (seen.TryGetValue((streams, batch, turns), out var known)) return known;
            int concurrency = streams * batch;
            log($"Measuring streams={streams} batch={batch} concurrency={concurrency}{(turns ? "" : " overlapping")} ({why})…");
            var report = BenchmarkRunner.Run(settings with
            {
                Engine = settings.Engine with { Mode = EngineMode.Async, Streams = streams, MaxBatch = batch, MaxJobs = Math.Max(32, 4 * concurrency), ExclusiveCompute = turns },
                Concurrency = concurrency,
                Requests = Math.Max(settings.Requests, 2 * concurrency),
                Probe = probe,
            }, log);
            probe = false;
            string verdict = report.Latency.P99 <= latencyCapMs ? "within cap" : "p99 over cap";
            var step = new TuningStep(streams, batch, concurrency, report.ImagesPerMinute, report.Latency.P99, verdict, turns);
            seen[(streams, batch, turns)] = step;
            path.Add(step);
            return step;
        }

        var current = Measure(1, 1, "latency-optimal start");
        if (current.P99Ms > latencyCapMs)
            return new TuningResult(path, null, $"even one stream with batch 1 has p99 {current.P99Ms / 1000:F2} s, over the {latencyCapMs / 1000:F2} s cap");

        while (true)
        {
            var candidates = new List<TuningStep>();
            if (current.MaxBatch * 2 <= maxBatch) candidates.Add(Measure(current.Streams, current.MaxBatch * 2, "raise batch"));
            if (current.Streams + 1 <= maxStreams) candidates.Add(Measure(current.Streams + 1, current.MaxBatch, "raise streams"));
            if (candidates.Count == 0) return Finish("reached the largest streams and batch allowed");
            var within = candidates.Where(c => c.P99Ms <= latencyCapMs).ToList();
            if (within.Count == 0) return Finish("every larger configuration pushes p99 over the cap");
            var best = within.MaxBy(c => c.ImagesPerMinute)!;
            if (best.ImagesPerMinute < current.ImagesPerMinute * (1 + MinimumGain))
                return Finish($"throughput stopped growing (best next step {best.ImagesPerMinute:F2} vs {current.ImagesPerMinute:F2} images/min)");
            current = best;
        }

        TuningResult Finish(string reason)
        {
            var overlapping = Measure(current.Streams, current.MaxBatch, "heavy calls overlapping instead of taking turns", turns: false);
            if (overlapping.P99Ms <= latencyCapMs && overlapping.ImagesPerMinute >= current.ImagesPerMinute * (1 + MinimumGain))
                return new TuningResult(path, Mark(path, overlapping), $"{reason}; overlapping heavy calls gained {overlapping.ImagesPerMinute / current.ImagesPerMinute - 1:P0}");
            return new TuningResult(path, Mark(path, current), $"{reason}; taking turns kept (overlapping: {overlapping.ImagesPerMinute:F2} images/min)");
        }
    }

    private static TuningStep Mark(List<TuningStep> path, TuningStep chosen)
    {
        int i = path.IndexOf(chosen);
        path[i] = chosen with { Verdict = "chosen" };
        return path[i];
    }
}
