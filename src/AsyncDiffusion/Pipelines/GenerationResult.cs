using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Pipelines;

/// <summary>One finished image with the seed and infotext that reproduce it.</summary>
public sealed record GeneratedImage(RgbImage Image, long Seed, string Infotext);

/// <summary>Per-stage wall-clock times of one request, in milliseconds.</summary>
public sealed class StageTimings
{
    public double TokenizeMs { get; set; }
    public double TextEncodeMs { get; set; }
    public double ImageEncodeMs { get; set; }
    public List<double> UNetStepMs { get; } = new();
    public double DecodeMs { get; set; }

    /// <summary>Hires fix: upscaling between the passes (for image upscalers a decode and an encode).</summary>
    public double HiresUpscaleMs { get; set; }
    public double TotalMs { get; set; }

    public double UNetTotalMs => UNetStepMs.Sum();
}

/// <summary>The images of one request; <paramref name="Width"/> and <paramref name="Height"/> are theirs (the hires size with hires fix).</summary>
public sealed record GenerationResult(IReadOnlyList<GeneratedImage> Images, StageTimings Timings, long PeakMemoryBytes, int Width, int Height, string Scheduler);

/// <summary>Reported after each denoising step of each image; <paramref name="Step"/> counts over all passes, the latents are [C, h, w] of the current pass.</summary>
public sealed record StepProgress(int ImageIndex, int ImageCount, int Step, int Steps, double Timestep, ReadOnlyMemory<float> Latents, int LatentHeight, int LatentWidth);
