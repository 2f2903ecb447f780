using System.Globalization;
using System.Text.Json;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Diagnostics;
using Spectre.Console;

namespace AsyncDiffusion.Cli;

/// <summary>What <c>--profile</c> prints and saves: time by operator type per component, and the memory timeline.</summary>
public static class ProfileReport
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The prefix ONNX Runtime's profile files get inside <paramref name="folder"/> (created here), or null without --profile.</summary>
    public static string? Prefix(string? folder)
    {
        if (folder is null) return null;
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AsyncDiffusionException($"--profile '{folder}' cannot be created ({e.Message}); expected a writable folder.");
        }
        return Path.Combine(Path.GetFullPath(folder), "ort");
    }

    /// <summary>Gives ONNX Runtime's trace files their component's name inside the profile folder.</summary>
    public static IReadOnlyList<(string Component, string File)> Collect(IEnumerable<(string Component, string File)> profiles, string folder) =>
        profiles.Select(p =>
        {
            string target = Path.Combine(folder, $"{p.Component}-profile.json");
            File.Move(p.File, target, overwrite: true);
            return (p.Component, target);
        }).ToArray();

    public static void Write(CliContext cli, string folder, (IReadOnlyList<OperatorTime> Operators, IReadOnlyList<AttentionTime> Attention) profile,
        IReadOnlyList<MemoryMark> timeline, bool quiet, ProbeResult? probe = null)
    {
        var (operators, attention) = profile;
        var roofline = probe is null ? [] : OperatorProfile.Roofline(operators, probe);
        string summary = Path.Combine(folder, "profile-summary.json");
        File.WriteAllText(summary, JsonSerializer.Serialize(new { operators, attention, roofline, probe, memory_timeline = timeline }, Json) + "\n");
        if (quiet) return;

        var ops = new Table().Title("Time by operator type").AddColumns("component", "op type", "calls", "ms", "share", "GFLOP/s", "caller waited");
        foreach (var group in operators.GroupBy(o => o.Component))
        {
            foreach (var o in group.Take(8))
                ops.AddRow(o.Component, o.OpType, o.Calls.ToString(CultureInfo.InvariantCulture), o.Milliseconds.ToString("F1", CultureInfo.InvariantCulture),
                    o.Share.ToString("P1", CultureInfo.InvariantCulture), o.GFlopPerSecond?.ToString("F0", CultureInfo.InvariantCulture) ?? "",
                    o.WaitMilliseconds > 0 ? o.WaitShare.ToString("P0", CultureInfo.InvariantCulture) : "");
            if (group.Count() > 8)
                ops.AddRow(group.Key, $"{group.Count() - 8} more", "", group.Skip(8).Sum(o => o.Milliseconds).ToString("F1", CultureInfo.InvariantCulture),
                    group.Skip(8).Sum(o => o.Share).ToString("P1", CultureInfo.InvariantCulture), "", "");
        }
        cli.Console.Write(ops);
        foreach (var a in attention)
            cli.Console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"{a.Component}: attention (Q·Kᵀ, Softmax, ·V or fused) {a.Milliseconds:F1} ms in {a.Calls} calls, {a.Share:P1} of its time"));

        if (probe is not null)
        {
            var table = new Table().Title(string.Create(CultureInfo.InvariantCulture,
                    $"Against this machine's peak ({probe.PeakGflops:F0} GFLOP/s on {probe.Threads} threads) and per-operator rates (Conv {probe.Conv3x3Gflops:F0}, MatMul {probe.MatMulGflops:F0}, attention {probe.AttentionGflops ?? probe.MatMulGflops:F0}), measured by probe now"))
                .AddColumns("component", "kernel ms", "GFLOP", "ms at peak", "% of peak roofline", "ms at operator rates", "% of per-operator roofline", "caller waited");
            foreach (var r in roofline.Where(r => r.GFlop > 0))
                table.AddRow(r.Component, r.KernelMilliseconds.ToString("F0", CultureInfo.InvariantCulture), r.GFlop.ToString("F1", CultureInfo.InvariantCulture),
                    r.IdealMilliseconds.ToString("F0", CultureInfo.InvariantCulture), r.Percent.ToString("F0", CultureInfo.InvariantCulture),
                    r.OperatorIdealMilliseconds?.ToString("F0", CultureInfo.InvariantCulture) ?? "", r.OperatorPercent?.ToString("F0", CultureInfo.InvariantCulture) ?? "",
                    r.WaitShare.ToString("P0", CultureInfo.InvariantCulture));
            cli.Console.Write(table);
            foreach (var line in probe.Findings()) cli.Console.MarkupLine(Markup.Escape(line));
        }

        var memory = new Table().Title("Memory timeline").AddColumns("after", "s", "RSS MiB", "peak so far MiB", "managed MiB");
        var shown = timeline.Where((m, i) => !m.Stage.Contains(" step ", StringComparison.Ordinal) || i == timeline.Count - 1
            || !timeline[i + 1].Stage.Contains(" step ", StringComparison.Ordinal) || m.Stage.EndsWith(" step 1/" + m.Stage.Split('/')[^1], StringComparison.Ordinal));
        foreach (var m in shown)
            memory.AddRow(Markup.Escape(m.Stage), m.Seconds.ToString("F1", CultureInfo.InvariantCulture), (m.ResidentBytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture),
                (m.PeakBytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture),
                (m.ManagedBytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture));
        cli.Console.Write(memory);
        cli.Error.WriteLine($"Profiles and {Path.GetFileName(summary)} written to {folder}.");
    }
}
