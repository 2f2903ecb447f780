using System.Runtime.CompilerServices;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// TAESD previews of running jobs for pollers (A1111's /progress, the jobs API): each job step is
/// decoded at most once however many clients poll, and one preview is decoded at a time however
/// many jobs are polled, so polling cannot multiply the decoder's work.
/// </summary>
internal sealed class PreviewCache(LatentDecoders decoders, ComputeGate gate)
{
    private sealed class Entry
    {
        public int Step = -1;
        public byte[]? Png;
    }

    private readonly ConditionalWeakTable<Job, Entry> _entries = new();
    private readonly SemaphoreSlim _decoding = new(1, 1);
    private long _decodes;

    /// <summary>Previews decoded so far (for tests and monitoring).</summary>
    public long Decodes => Interlocked.Read(ref _decodes);

    /// <summary>A PNG of the job's latest latents, or null before its first step (or after it ended).</summary>
    public byte[]? Of(Job job)
    {
        if (job.IsFinished)
        {
            _entries.Remove(job);
            return null;
        }
        var entry = _entries.GetOrCreateValue(job);
        lock (entry)
        {
            int step = job.StepsDone;
            if (entry.Step == step) return entry.Png;
            if (job.LatestLatents is not { } latents) return null;
            var plan = job.Plan;
            int c = plan.LatentChannels;
            var (h, w) = job.LatestLatentSize;
            if (latents.Length != c * h * w) return null;
            _decoding.Wait();
            try
            {
                entry.Png = Render(latents, c, h, w);
            }
            finally
            {
                _decoding.Release();
            }
            Interlocked.Increment(ref _decodes);
            entry.Step = step;
            return entry.Png;
        }
    }

    public byte[] Render(ReadOnlySpan<float> latents, int channels, int height, int width)
    {
        Imaging.RgbImage image;
        using (gate.Enter(CancellationToken.None)) image = decoders.Preview.DecodeImage(latents, channels, height, width);
        return ImageCodec.Encode(image, ImageFormat.Png);
    }
}
