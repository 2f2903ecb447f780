using System.Diagnostics;
using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>What the stages gather for one running job: finished images and files, timings, peak memory.</summary>
internal sealed class JobOutputs(Job job)
{
    private int _remaining = job.Plan.Seeds.Length;

    public Job Job { get; } = job;
    public StageTimings Timings { get; } = new();
    public PeakMemory Memory { get; } = PeakMemory.Start();
    public GeneratedImage?[] Images { get; } = new GeneratedImage?[job.Plan.Seeds.Length];
    public byte[]?[] Files { get; } = new byte[]?[job.Plan.Seeds.Length];
    public Stopwatch Clock { get; } = Stopwatch.StartNew();

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

    public void AddUpscaleTime(double ms)
    {
        lock (Timings) Timings.HiresUpscaleMs += ms;
    }

    public void AddImageEncodeTime(double ms)
    {
        lock (Timings) Timings.ImageEncodeMs += ms;
    }

    public GenerationResult ToResult()
    {
        Timings.TotalMs = Clock.Elapsed.TotalMilliseconds;
        var plan = Job.Plan;
        return new GenerationResult(Images.Select(i => i!).ToArray(), Timings, Memory.Peak, plan.OutputWidth, plan.OutputHeight, plan.SchedulerName);
    }
}

/// <summary>One image of a running job as it moves between the denoise, decode and encode stages.</summary>
internal sealed class ImageInFlight(JobOutputs outputs, DenoisingImage image)
{
    private static long s_created;

    /// <summary>Order of arrival at the denoise stage (images are made as their requests are prepared): the denoise queue serves the oldest first.</summary>
    public long Arrival { get; } = Interlocked.Increment(ref s_created);

    public JobOutputs Outputs { get; } = outputs;
    public Job Job => Outputs.Job;
    public DenoisingImage Image { get; } = image;
    public Imaging.RgbImage? Decoded { get; set; }
}
