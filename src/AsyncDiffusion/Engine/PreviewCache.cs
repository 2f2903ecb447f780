using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>TAESD previews of running jobs: clients poll every second or so, so each job step is decoded at most once.</summary>
internal sealed class PreviewCache(LatentDecoders decoders, ComputeGate gate)
{
    private sealed record Preview(string JobId, int Step, byte[] Png);
    private Preview? _latest;

    /// <summary>A PNG of the job's latest latents, or null before its first step (or after it ended).</summary>
    public byte[]? Of(Job job)
    {
        if (job.LatestLatents is not { } latents) return null;
        int step = job.StepsDone;
        if (Volatile.Read(ref _latest) is { } cached && cached.JobId == job.Id && cached.Step == step) return cached.Png;
        int c = job.Plan.LatentChannels;
        var (h, w) = job.LatestLatentSize;
        if (latents.Length != c * h * w) return null;
        var png = Render(latents, c, h, w);
        Volatile.Write(ref _latest, new Preview(job.Id, step, png));
        return png;
    }

    public byte[] Render(ReadOnlySpan<float> latents, int channels, int height, int width)
    {
        Imaging.RgbImage image;
        using (gate.Enter(CancellationToken.None)) image = decoders.Preview.DecodeImage(latents, channels, height, width);
        return ImageCodec.Encode(image, ImageFormat.Png);
    }
}
