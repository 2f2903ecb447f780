using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine.Stages;

/// <summary>Takes queued jobs in order and prepares them (prompt states, init image, initial noise); their images join the denoise queue.</summary>
internal sealed class PrepareStage(StageQueues queues, RequestPreparation preparation, JobRegistry registry, ComputeGate gate)
{
    public void Run(CancellationToken stop)
    {
        foreach (var job in StageQueues.Drain(queues.Prepare.Reader, stop))
        {
            if (job.IsFinished) continue;
            var outputs = new JobOutputs(job);
            try
            {
                job.MarkRunning();
                IReadOnlyList<DenoisingImage> images;
                using (gate.Enter(job.CancellationToken)) images = preparation.Prepare(job.Plan, outputs.Timings, job.CancellationToken);
                job.Plan.ReleaseInputs();
                foreach (var image in images) queues.Denoise.Add(new ImageInFlight(outputs, image));
            }
            catch (Exception e)
            {
                registry.Fail(job, e);
            }
        }
    }
}
