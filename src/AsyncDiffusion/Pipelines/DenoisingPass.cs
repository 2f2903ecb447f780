using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The schedule of one denoising pass of a plan: its latent size and a scheduler configured once
/// for its steps (and strength), with the index where denoising starts. A txt2img or img2img
/// request has one pass; hires fix adds a second at the larger size.
/// </summary>
public sealed class DenoisingPass
{
    // Configured once; never stepped itself.
    private readonly Scheduler _schedule;

    internal DenoisingPass(Scheduler schedule, int startIndex, int latentWidth, int latentHeight)
    {
        _schedule = schedule;
        StartIndex = startIndex;
        LatentWidth = latentWidth;
        LatentHeight = latentHeight;
    }

    /// <summary>Index in <see cref="Timesteps"/> where denoising starts (0 for txt2img).</summary>
    public int StartIndex { get; }

    /// <summary>UNet calls per image in this pass: the timesteps from the start (PNDM makes one more than steps).</summary>
    public int Steps => _schedule.Timesteps.Count - StartIndex;

    /// <summary>The whole schedule's timesteps (denoising runs from <see cref="StartIndex"/>).</summary>
    public IReadOnlyList<double> Timesteps => _schedule.Timesteps;

    public int LatentWidth { get; }
    public int LatentHeight { get; }

    /// <summary>A scheduler for one image: this pass's schedule with fresh per-run state (schedulers hold state).</summary>
    public Scheduler CreateScheduler() => _schedule.CloneForRun();
}
