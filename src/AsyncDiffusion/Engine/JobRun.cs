using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>The engine's working state for one job: its embeddings, images in flight, finished files and timings.</summary>
internal sealed class JobRun(Job job)
{
    private int _remaining;

    public Job Job { get; } = job;
    public StageTimings Timings { get; } = new();
    public PeakMemory Memory { get; } = PeakMemory.Start();
    public GeneratedImage?[] Images { get; } = new GeneratedImage?[job.Plan.Seeds.Length];
    public byte[]?[] Files { get; } = new byte[]?[job.Plan.Seeds.Length];
    public System.Diagnostics.Stopwatch Clock { get; } = System.Diagnostics.Stopwatch.StartNew();

    public void ExpectImages(int count) => _remaining = count;

    /// <summary>True when this was the last image.</summary>
    public bool ImageFinished() => Interlocked.Decrement(ref _remaining) == 0;

    public void AddStepTime(double ms)
    {
        lock (Timings) Timings.UNetStepMs.Add(ms);
    }

    public void AddDecodeTime(double ms)
    {
        lock (Timings) Timings.DecodeMs += ms;
    }
}
