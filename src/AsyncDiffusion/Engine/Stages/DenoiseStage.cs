using System.Diagnostics;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>
/// One stream of the denoise stage: takes a batch of compatible images from the queue, runs
/// one UNet call for all of them through the denoising core, steps each image, and sends it on
/// to the decode stage (finished, or between hires fix's passes) or back to the queue. An error
/// in one image ends only its job.
/// </summary>
internal sealed class DenoiseStage(StageQueues queues, ModelFolder model, JobRegistry registry, UNetActivity activity, PreviewCache previews, int previewEvery,
    ComputeGate gate)
{
    public void Run(CancellationToken stop)
    {
        while (queues.Denoise.Take(stop) is { } batch)
        {
            batch.RemoveAll(w => w.Job.IsFinished);
            if (batch.Count == 0) continue;
            var images = batch.Select(w => w.Image).ToArray();

            // A lone job may be interrupted inside the UNet; a shared batch runs to the end for the others.
            using var linked = batch.Count == 1 ? CancellationTokenSource.CreateLinkedTokenSource(stop, batch[0].Job.CancellationToken) : null;
            float[] output;
            Stopwatch clock;
            try
            {
                using var slot = gate.Enter(linked?.Token ?? stop);
                clock = Stopwatch.StartNew();
                activity.Enter();
                try
                {
                    output = UNetBatch.Evaluate(model, images, linked?.Token ?? stop);
                }
                finally
                {
                    activity.Exit();
                }
            }
            catch (Exception e)
            {
                foreach (var w in batch) registry.Fail(w.Job, e);
                continue;
            }
            double ms = clock.Elapsed.TotalMilliseconds;
            activity.Count(images.Sum(i => i.Rows));

            for (int i = 0; i < batch.Count; i++)
            {
                var w = batch[i];
                if (w.Job.IsFinished) continue;
                try
                {
                    double t = w.Image.Timestep;
                    w.Image.CompleteStep(UNetBatch.OutputOf(output, images, i));
                    w.Outputs.AddStepTime(ms);
                    w.Job.StepDone(w.Image.Index, w.Image.StepsDone, w.Image.StepsTotal, t, w.Image.Latents.ToArray(), w.Image.LatentHeight, w.Image.LatentWidth);
                    if (previewEvery > 0 && w.Image.StepsDone % previewEvery == 0 && !w.Image.IsDenoised)
                        w.Job.Emit(new JobPreview(w.Job.Id, w.Image.Index, w.Image.StepsDone,
                            previews.Render(w.Image.Latents, w.Image.Channels, w.Image.LatentHeight, w.Image.LatentWidth)));
                    if (w.Image.IsDenoised || w.Image.NeedsUpscale) queues.Decode.Writer.TryWrite(w);
                    else queues.Denoise.Add(w);
                }
                catch (Exception e)
                {
                    registry.Fail(w.Job, e);
                }
            }
        }
    }
}
