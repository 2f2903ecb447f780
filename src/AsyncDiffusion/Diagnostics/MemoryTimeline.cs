using System.Diagnostics;

namespace AsyncDiffusion.Diagnostics;

/// <summary>One point of a memory timeline: after which stage, when, and how much memory the process held.</summary>
public sealed record MemoryMark(string Stage, double Seconds, long ResidentBytes, long ManagedBytes)
{
    /// <summary>The process's peak resident memory so far (the kernel's high-water mark): which stage raised it shows where the peak is.</summary>
    public long PeakBytes { get; init; }
}

/// <summary>Resident and managed memory at stage boundaries, to see which stage grows the process (thread-safe).</summary>
public sealed class MemoryTimeline
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<MemoryMark> _marks = new();

    public IReadOnlyList<MemoryMark> Marks
    {
        get { lock (_marks) return _marks.ToArray(); }
    }

    public void Mark(string stage)
    {
        using var process = Process.GetCurrentProcess();
        var mark = new MemoryMark(stage, _clock.Elapsed.TotalSeconds, process.WorkingSet64, GC.GetTotalMemory(forceFullCollection: false)) { PeakBytes = process.PeakWorkingSet64 };
        lock (_marks) _marks.Add(mark);
    }
}
