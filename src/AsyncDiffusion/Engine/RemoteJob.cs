using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// A <see cref="Job"/> whose work runs somewhere else (another node of a cluster). Its owner
/// reports what happens there; watchers see an ordinary job (events, completion, cancel).
/// Cancelling the job ends it here at once; the owner is told through <see cref="Job.CancellationToken"/>.
/// </summary>
public sealed class RemoteJob
{
    public RemoteJob(string id, GenerationPlan plan)
    {
        Job = new Job(id, plan);
        Job.CancellationToken.Register(() => Job.Fail(new OperationCanceledException()));
    }

    public Job Job { get; }

    public void Started() => Job.MarkRunning();

    /// <summary>Steps done over all images so far (reports that do not advance are ignored).</summary>
    public void Progress(int stepsDone)
    {
        int perImage = Math.Max(1, Job.Plan.StepsPerImage);
        int image = Math.Min(Job.Plan.Seeds.Length - 1, (stepsDone - 1) / perImage);
        int step = stepsDone - image * perImage;
        Job.StepsReported(image, stepsDone, step, perImage, 0);
    }

    public void ImageReady(int index, long seed) => Job.Emit(new JobImageReady(Job.Id, index, seed));

    public bool Succeed(JobResult result) => Job.Succeed(result);

    /// <summary>Ends the job as failed; <see cref="AsyncDiffusionException"/> messages are shown to clients as they are.</summary>
    public bool Fail(Exception error) => Job.Fail(error);

    public bool Cancelled() => Job.Fail(new OperationCanceledException());
}
