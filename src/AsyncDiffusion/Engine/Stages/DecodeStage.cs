using System.Diagnostics;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>Decodes denoised images (the request's VAE or TAESD) and passes them to image encoding.</summary>
internal sealed class DecodeStage(StageQueues queues, LatentDecoders decoders, JobRegistry registry, ComputeGate gate)
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
