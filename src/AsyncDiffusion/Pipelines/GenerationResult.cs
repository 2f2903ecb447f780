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
    public double TotalMs { get; set; }

    public double UNetTotalMs => UNetStepMs.Sum();
}

public sealed record GenerationResult(IReadOnlyList<GeneratedImage> Images, StageTimings Timings, long PeakMemoryBytes, int Width, int Height, string Scheduler);

/// <summary>Reported after each denoising step of each image.</summary>
public sealed record StepProgress(int ImageIndex, int ImageCount, int Step, int Steps, double Timestep, ReadOnlyMemory<float> Latents);
