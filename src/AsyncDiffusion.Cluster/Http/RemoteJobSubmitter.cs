using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Node;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Catalog;

namespace AsyncDiffusion.Cluster.Http;

/// <summary>
/// The A1111 and OpenAI endpoints' submitter on a cluster node: the request is planned here
/// (bad input is a 400 at once, as without a cluster), written to the cluster, and followed
/// through a <see cref="RemoteJob"/> that the endpoints await like a local job.
/// </summary>
public sealed class RemoteJobSubmitter(ClusterJobs jobs, ModelCatalog catalog, ILogger log)
{
    public const string IdempotencyHeader = "Idempotency-Key";

    public async Task<Job> Submit(GenerationRequest request, HttpContext context)
    {
        var engine = catalog.Engine;
        var plan = GenerationPlan.Create(request, engine.Model, engine.Limits);
        var snapshot = await jobs.Submit(ClusterRequest.From(request, catalog.Current.Name), ShapeOf(plan), IdempotencyKey(context));
        if (snapshot.Seeds.Length > 0 && (snapshot.Seeds[0] != plan.Seeds[0] || snapshot.Request.Subseed != plan.Subseeds[0]))
            plan = GenerationPlan.Create(request with { Seed = snapshot.Seeds[0], Subseed = snapshot.Request.Subseed }, engine.Model, engine.Limits); // a retry: the first submission's seeds
        var remote = new RemoteJob(snapshot.Id, plan);
        remote.Job.CancellationToken.Register(() => jobs.Cancel(snapshot.Id).ContinueWith(t => log.LogWarning("Cancelling cluster job {Job} failed: {Error}", snapshot.Id, t.Exception?.InnerException?.Message),
            TaskContinuationOptions.OnlyOnFaulted));
        _ = Task.Run(() => Follow(remote, snapshot.SubmittedAt));
        return remote.Job;
    }

    public static string? IdempotencyKey(HttpContext context) =>
        context.Request.Headers.TryGetValue(IdempotencyHeader, out var key) && !string.IsNullOrWhiteSpace(key) ? key.ToString().Trim() : null;

    public static PlannedShape ShapeOf(GenerationPlan plan) =>
        new(plan.Seeds, plan.OutputWidth, plan.OutputHeight, plan.SchedulerName, plan.Seeds.Length * plan.StepsPerImage, plan.Subseeds[0]);

    private async Task Follow(RemoteJob remote, DateTime submittedAt)
    {
        string id = remote.Job.Id;
        try
        {
            await foreach (var e in jobs.Watch(id, remote.Job.CancellationToken))
            {
                switch (e.Kind)
                {
                    case ClusterEventKind.Started: remote.Started(); break;
                    case ClusterEventKind.Step: remote.Progress(e.StepsDone); break;
                    case ClusterEventKind.Image: remote.ImageReady(e.Image, e.Seed); break;
                    case ClusterEventKind.Done: await End(remote, submittedAt); return;
                }
            }
        }
        catch (OperationCanceledException) when (remote.Job.IsFinished)
        {
        }
        catch (Exception e)
        {
            log.LogWarning("Lost track of cluster job {Job}: {Error}", id, e.Message);
            remote.Fail(new GenerationFailedException($"The cluster could not be reached to follow job {id}; fetch it later with GET /api/v1/jobs/{id}."));
        }
    }

    private async Task End(RemoteJob remote, DateTime submittedAt)
    {
        string id = remote.Job.Id;
        var job = await jobs.Get(id) ?? throw new InvalidOperationException($"cluster job {id} vanished");
        switch (job.Status)
        {
            case ClusterJobStatus.Succeeded:
                var files = new byte[job.ImageCount][];
                var images = new GeneratedImage[job.ImageCount];
                for (int i = 0; i < files.Length; i++)
                {
                    files[i] = await jobs.Image(id, i) ?? throw new InvalidOperationException($"cluster job {id} has no image {i}");
                    images[i] = new GeneratedImage(ImageCodec.Decode(files[i], $"image {i} of job {id}"), job.Seeds[i], job.Infotexts?[i] ?? "");
                }
                var timings = new StageTimings { TotalMs = (DateTime.UtcNow - submittedAt).TotalMilliseconds };
                double queueWait = job.StartedAt is { } started ? (started - submittedAt).TotalMilliseconds : 0;
                remote.Succeed(new JobResult(new GenerationResult(images, timings, 0, job.Width ?? 0, job.Height ?? 0, job.Scheduler ?? ""), files, queueWait));
                break;
            case ClusterJobStatus.Failed:
                remote.Fail(new GenerationFailedException(job.Error ?? "the job failed"));
                break;
            default:
                remote.Cancelled();
                break;
        }
    }
}
