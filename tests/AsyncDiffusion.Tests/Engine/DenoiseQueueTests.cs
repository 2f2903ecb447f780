using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>The denoise queue serves the oldest image first and batches compatible later ones with it.</summary>
public sealed class DenoiseQueueTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder("optimum"), DiffusionEngine.SessionSettingsFor(new EngineOptions()));
    private readonly RequestPreparation _preparation;
    private int _jobs;

    public DenoiseQueueTests() => _preparation = new RequestPreparation(_model, new PromptCache(_model, 8));

    public void Dispose() => _model.Dispose();

    private ImageInFlight Image(int width = 64)
    {
        var job = new Job($"job{++_jobs}", GenerationPlan.Create(new GenerationRequest { Prompt = "x", Steps = 4, Seed = _jobs, Width = width, Height = 64 }, _model));
        return new ImageInFlight(new JobOutputs(job), _preparation.Prepare(job.Plan, new StageTimings(), default)[0]);
    }

    private static string[] Ids(List<ImageInFlight>? batch) => batch!.Select(w => w.Job.Id).ToArray();

    [Fact]
    public void AnUnfinishedImageGoesBackToItsPlaceNotToTheEnd()
    {
        var queue = new DenoiseQueue(maxBatch: 1, _model.UNet);
        var (a, b, c) = (Image(), Image(), Image());
        queue.Add(a);
        queue.Add(b);
        Assert.Equal([a.Job.Id], Ids(queue.Take(default)));
        queue.Add(c);
        queue.Add(a); // back after its step: still the oldest
        Assert.Equal([a.Job.Id], Ids(queue.Take(default)));
        queue.Add(a);
        Assert.Equal([a.Job.Id], Ids(queue.Take(default)));
        Assert.Equal([b.Job.Id], Ids(queue.Take(default)));
        Assert.Equal([c.Job.Id], Ids(queue.Take(default)));
        Assert.Equal(0, queue.Waiting);
    }

    [Fact]
    public void ABatchIsTheOldestImageAndTheNextCompatibleOnesInOrder()
    {
        var queue = new DenoiseQueue(maxBatch: 2, _model.UNet);
        var (a, wide, b, c) = (Image(), Image(width: 128), Image(), Image());
        foreach (var w in new[] { c, wide, b, a }) queue.Add(w); // added out of order: the queue keeps arrival order
        Assert.Equal([a.Job.Id, b.Job.Id], Ids(queue.Take(default)));
        queue.Add(b);
        queue.Add(a);
        Assert.Equal([a.Job.Id, b.Job.Id], Ids(queue.Take(default)));
        Assert.Equal([wide.Job.Id], Ids(queue.Take(default))); // the oldest left; c cannot share its call
        Assert.Equal([c.Job.Id], Ids(queue.Take(default)));
    }
}
