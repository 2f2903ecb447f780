using System.Diagnostics;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>
/// The VAE stage: decodes denoised images (the request's VAE or TAESD) and passes them to image
/// encoding; images between hires fix's passes are upscaled here (for image upscalers a decode
/// and an encode) and go back to the denoise queue at their new size.
/// </summary>
internal sealed class DecodeStage(StageQueues queues, LatentDecoders decoders, HiresUpscaling upscaling, JobRegistry registry, ComputeGate gate)
{
    public void Run(CancellationToken stop)
    {
        foreach (var w in StageQueues.Drain(queues.Decode.Reader, stop))
        {
            var job = w.Job;
            if (job.IsFinished) continue;
            try
            {
                using var slot = gate.Enter(job.CancellationToken);
                var clock = Stopwatch.StartNew();
                if (w.Image.NeedsUpscale)
                {
                    w.Image.StartSecondPass(upscaling, job.CancellationToken);
                    w.Outputs.AddUpscaleTime(clock.Elapsed.TotalMilliseconds);
                    queues.Denoise.Add(w);
                    continue;
                }
                w.Decoded = w.Image.Decode(decoders.For(job.Request.Decoder, job.Request.Tiling), job.CancellationToken);
                w.Outputs.AddDecodeTime(clock.Elapsed.TotalMilliseconds);
                w.Outputs.Memory.Sample();
                queues.Encode.Writer.TryWrite(w);
            }
            catch (Exception e)
            {
                registry.Fail(job, e);
            }
        }
    }
}
