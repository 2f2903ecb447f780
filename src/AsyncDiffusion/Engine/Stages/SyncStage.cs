using System.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>Sync mode: one job at a time through the synchronous driver (the same core, no overlap), then image encoding.</summary>
internal sealed class SyncStage(StageQueues queues, StableDiffusionPipeline pipeline, JobRegistry registry, UNetActivity activity, ImageFormat format,
    Action<int> imagesMade)
{
    public void Run(CancellationToken stop)
    {
        foreach (var job in StageQueues.Drain(queues.Prepare.Reader, stop))
        {
            if (job.IsFinished) continue;
            try
            {
                job.MarkRunning();
                var result = pipeline.Run(job.Plan, s => job.StepDone(s.ImageIndex, s.Step, s.Steps, s.Timestep, s.Latents.ToArray(), s.LatentHeight, s.LatentWidth), job.CancellationToken);
                var clock = Stopwatch.StartNew();
                var files = result.Images.Select(i => ImageCodec.Encode(i.Image, format, i.Infotext)).ToArray();
                result.Timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
                imagesMade(result.Images.Count);
                int calls = result.Timings.UNetStepMs.Count;
                activity.Add(calls, calls * (long)job.Plan.RowsPerImage, result.Timings.UNetTotalMs);
                double wait = ((job.StartedAt ?? DateTime.UtcNow) - job.SubmittedAt).TotalMilliseconds;
                registry.Succeed(job, new JobResult(result, files, wait));
            }
            catch (Exception e)
            {
                registry.Fail(job, e);
            }
        }
    }
}
