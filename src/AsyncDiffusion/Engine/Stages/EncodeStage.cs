using System.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>Encodes decoded images (PNG with infotext, or the configured format); the last image of a job completes it.</summary>
internal sealed class EncodeStage(StageQueues queues, JobRegistry registry, ImageFormat format, Action<int> imagesMade)
{
    public void Run(CancellationToken stop)
    {
        foreach (var w in StageQueues.Drain(queues.Encode.Reader, stop))
        {
            var outputs = w.Outputs;
            var job = w.Job;
            if (job.IsFinished) continue;
            try
            {
                var clock = Stopwatch.StartNew();
                string info = GenerationInfotext.For(w.Image);
                outputs.Images[w.Image.Index] = new GeneratedImage(w.Decoded!, w.Image.Seed, info);
                outputs.Files[w.Image.Index] = ImageCodec.Encode(w.Decoded!, format, info);
                outputs.AddImageEncodeTime(clock.Elapsed.TotalMilliseconds);
                imagesMade(1);
                job.Emit(new JobImageReady(job.Id, w.Image.Index, w.Image.Seed));
                if (outputs.ImageFinished())
                {
                    double wait = ((job.StartedAt ?? DateTime.UtcNow) - job.SubmittedAt).TotalMilliseconds;
                    registry.Succeed(job, new JobResult(outputs.ToResult(), outputs.Files.Select(f => f!).ToArray(), wait));
                }
            }
            catch (Exception e)
            {
                registry.Fail(job, e);
            }
        }
    }
}
