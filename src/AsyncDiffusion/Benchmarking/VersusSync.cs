namespace AsyncDiffusion.Benchmarking;

/// <summary>One round of an async configuration measured beside sync mode in the same process.</summary>
public sealed record VersusSyncRound(BenchmarkReport Sync, BenchmarkReport Async)
{
    public double ThroughputRatio => Async.ImagesPerMinute / Sync.ImagesPerMinute;
    public double LatencyRatio => Async.Latency.P50 / Sync.Latency.P50;
}

/// <summary>
/// An async configuration against sync mode, measured in rounds that take turns in one process.
/// On a shared 2-core machine two separate runs of the same configuration differ by up to ≈8 %,
/// more than the differences worth knowing, so each ratio is taken between neighbours in time
/// and the median of the rounds is the figure; the range says how noisy it was.
/// </summary>
public sealed record VersusSync(IReadOnlyList<VersusSyncRound> Rounds)
{
    public double MedianThroughputRatio => SampleStatistics.Median(Rounds.Select(r => r.ThroughputRatio));
    public double MinThroughputRatio => Rounds.Min(r => r.ThroughputRatio);
    public double MaxThroughputRatio => Rounds.Max(r => r.ThroughputRatio);
    public double MedianLatencyRatio => SampleStatistics.Median(Rounds.Select(r => r.LatencyRatio));

    /// <summary>Pairs reports measured in turns (sync/async in either order within each pair).</summary>
    public static VersusSync From(IReadOnlyList<BenchmarkReport> reports)
    {
        if (reports.Count == 0 || reports.Count % 2 != 0) throw new ArgumentException($"expected pairs of reports, got {reports.Count}.", nameof(reports));
        var rounds = new List<VersusSyncRound>();
        for (int i = 0; i < reports.Count; i += 2)
        {
            var (a, b) = (reports[i], reports[i + 1]);
            rounds.Add(a.Mode == "sync" && b.Mode != "sync" ? new VersusSyncRound(a, b)
                : b.Mode == "sync" && a.Mode != "sync" ? new VersusSyncRound(b, a)
                : throw new ArgumentException($"round {i / 2 + 1} is {a.Mode} and {b.Mode}; expected one sync and one async report.", nameof(reports)));
        }
        return new VersusSync(rounds);
    }
}
