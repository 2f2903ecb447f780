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

    /// <summary>VmHWM on Linux; PeakWorkingSet64 elsewhere.</summary>
    public static long ProcessPeak()
    {
        using var p = Process.GetCurrentProcess();
        return p.PeakWorkingSet64;
    }
}
