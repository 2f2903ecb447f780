using System.Diagnostics;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Catalog;

namespace AsyncDiffusion.Cluster.Node;

/// <summary>Runs leased jobs on this node's engine (the model currently loaded in its catalogue).</summary>
public sealed class EngineExecutor(ModelCatalog catalog) : IJobExecutor
{
    public IReadOnlyList<string> Models => [catalog.Current.Name];

    public int Slots
    {
        get
        {
            var o = catalog.Engine.Options;
            return Math.Min(o.MaxJobs, o.Mode == EngineMode.Sync ? 1 : o.Streams * o.MaxBatch);
        }
    }

    public int MaxJobs => catalog.Engine.Options.MaxJobs;

    public async Task<ClusterJobResult> Execute(string jobId, ClusterRequest request, Action<int, int> progress, CancellationToken cancellation)
    {
        if (request.Model != catalog.Current.Name)
            throw new AsyncDiffusionException($"this node serves '{catalog.Current.Name}', not '{request.Model}'");
        var clock = Stopwatch.StartNew();
        var job = catalog.Engine.Submit(request.ToGenerationRequest());
        using var cancel = cancellation.Register(() => job.Cancel());
        var watch = Task.Run(async () =>
        {
            await foreach (var e in job.ReadEventsAsync(CancellationToken.None))
                if (e is JobStep) progress(job.StepsDone, job.StepsTotal);
        }, CancellationToken.None);
        var result = await job.Completion;
        await watch;
        var images = result.Generation.Images;
        return new ClusterJobResult(result.Files.ToArray(), images.Select(i => i.Seed).ToArray(), images.Select(i => i.Infotext).ToArray(),
            result.Generation.Width, result.Generation.Height, result.Generation.Scheduler, clock.Elapsed.TotalMilliseconds);
    }
}
