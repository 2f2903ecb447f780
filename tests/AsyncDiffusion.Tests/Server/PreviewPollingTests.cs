using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Previews for pollers (/sdapi/v1/progress, /api/v1/jobs/{id}/preview) come from the engine's cache: at most one decode per job step.</summary>
public sealed class PreviewPollingTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder("optimum"), DiffusionEngine.SessionSettingsFor(new EngineOptions()));

    public void Dispose() => _model.Dispose();

    private Job RunningJob(string id)
    {
        var plan = GenerationPlan.Create(new GenerationRequest { Prompt = id, Steps = 10, Width = 128, Height = 128 }, _model);
        var job = new Job(id, plan);
        job.MarkRunning();
        return job;
    }

    private static void Step(Job job, int step) =>
        job.StepDone(0, step, 10, 999 - step, Enumerable.Range(0, job.Plan.LatentChannels * job.Plan.LatentHeight * job.Plan.LatentWidth).Select(i => (float)Math.Sin(i + step)).ToArray(),
            job.Plan.LatentHeight, job.Plan.LatentWidth);

    [Fact]
    public async Task ManyPollersOfTwoJobsDecodeEachJobStepOnce()
    {
        using var decoders = new LatentDecoders(_model, DiffusionEngine.SessionSettingsFor(new EngineOptions()));
        var cache = new PreviewCache(decoders, new ComputeGate(0));
        Job a = RunningJob("a"), b = RunningJob("b");
        Assert.Null(cache.Of(a)); // nothing before the first step
        Step(a, 1);
        Step(b, 1);

        // Eight clients polling both jobs in turn: two job steps, two decodes.
        async Task Poll() => await Task.WhenAll(Enumerable.Range(0, 8).Select(p => Task.Run(() =>
        {
            for (int i = 0; i < 40; i++) Assert.NotNull(cache.Of((i + p) % 2 == 0 ? a : b));
        })));
        await Poll();
        Assert.Equal(2, cache.Decodes);

        Step(a, 2);
        await Poll();
        Assert.Equal(3, cache.Decodes);
        Assert.NotEqual(cache.Of(a), cache.Of(b));
    }

    [Fact]
    public async Task AFinishedJobHasNoPreview()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions());
        var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 2 });
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Null(engine.PreviewPng(job));
        Assert.Equal(0, engine.PreviewDecodes);
    }
}
