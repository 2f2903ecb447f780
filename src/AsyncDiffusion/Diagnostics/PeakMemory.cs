using System.Diagnostics;

namespace AsyncDiffusion.Diagnostics;

/// <summary>
/// Peak resident memory of the process (the kernel's high-water mark where available, else
/// sampled working set), so a run can report what it needed.
/// </summary>
public sealed class PeakMemory
{
    private long _peak;

    public static PeakMemory Start()
    {
        var m = new PeakMemory();
        m.Sample();
        return m;
    }

    public long Peak => Math.Max(_peak, ProcessPeak());

    public void Sample()
    {
        using var p = Process.GetCurrentProcess();
        _peak = Math.Max(_peak, p.WorkingSet64);
    }

    /// <summary>
    /// Starts the process's peak over from its current size, so runs measured one after another
    /// in one process each report their own peak: collects the managed heap (returning freed
    /// memory to the system), then resets the kernel's high-water mark (Linux: /proc/self/clear_refs).
    /// Returns false where the peak cannot be reset.
    /// </summary>
    public static bool ResetProcessPeak()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>VmHWM on Linux; PeakWorkingSet64 elsewhere.</summary>
    public static long ProcessPeak()
    {
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}
