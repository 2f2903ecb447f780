using System.Diagnostics;

namespace AsyncDiffusion.Engine;

/// <summary>UNet calls and rows, and the wall time during which at least one stream was inside the UNet (for achieved GFLOP/s).</summary>
internal sealed class UNetActivity
{
    private readonly object _lock = new();
    private readonly Stopwatch _active = new();
    private int _running;
    private long _calls, _rows;
    private double _extraMs;

    public long Calls => Interlocked.Read(ref _calls);
    public long Rows => Interlocked.Read(ref _rows);

    public double ActiveMs
    {
        get { lock (_lock) return _active.Elapsed.TotalMilliseconds + _extraMs; }
    }

    public void Enter()
    {
        lock (_lock)
            if (_running++ == 0) _active.Start();
    }

    public void Exit()
    {
        lock (_lock)
            if (--_running == 0) _active.Stop();
    }

    public void Count(int rows)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _rows, rows);
    }

    /// <summary>For the sync driver, which times its own calls.</summary>
    public void Add(long calls, long rows, double ms)
    {
        Interlocked.Add(ref _calls, calls);
        Interlocked.Add(ref _rows, rows);
        lock (_lock) _extraMs += ms;
    }
}
