using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Doubles;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>The asynchronous engine on the tiny synthetic model (per-item timesteps, so steps of different requests batch).</summary>
public sealed class DiffusionEngineTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder("optimum"), DiffusionEngine.SessionSettingsFor(new EngineOptions()));
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public void Dispose() => _model.Dispose();

    private static IEnumerable<GenerationRequest> MixedRequests()
    {
        var init = PipelineMathTests.InitImage();
        string[] schedulers = ["Euler a", "DPM++ 2M Karras", "DDIM", "PNDM", "LMS", "Euler"];
        for (int i = 0; i < 12; i++)
            yield return new GenerationRequest
            {
                Prompt = $"request {i % 4}",
                NegativePrompt = i % 3 == 0 ? "blurry" : "",
                Steps = 3 + i % 4,
                GuidanceScale = i % 5 == 0 ? 1.0 : 6.0,
                Seed = 1000 + i,
                Scheduler = schedulers[i % schedulers.Length],
                Width = i % 4 == 3 ? 128 : 64,
                Height = 64,
                Count = i % 6 == 1 ? 2 : 1,
                InitImage = i % 4 == 2 ? init : null,
                Strength = 0.6,
                Decoder = i % 2 == 0 ? DecoderKind.Vae : DecoderKind.Taesd,
            };
    }

    [Theory]
    [InlineData(1, 4, true)]
    [InlineData(2, 2, true)]
    [InlineData(2, 1, true)]
    [InlineData(2, 2, false)]
    public async Task ConcurrentMixedRequestsMatchTheSyncPipeline(int streams, int maxBatch, bool exclusiveCompute)
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { Streams = streams, MaxBatch = maxBatch, MaxJobs = 64, ExclusiveCompute = exclusiveCompute });
        var requests = MixedRequests().ToArray();
        var jobs = requests.Select(engine.Submit).ToArray();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion)).WaitAsync(Patience);

        using var sync = new StableDiffusionPipeline(_model);
        for (int i = 0; i < requests.Length; i++)
        {
            var expected = sync.Generate(requests[i]);
            Assert.Equal(expected.Images.Count, results[i].Generation.Images.Count);
            for (int k = 0; k < expected.Images.Count; k++)
            {
                var a = expected.Images[k].Image.Pixels;
                var b = results[i].Generation.Images[k].Image.Pixels;
                int diff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
                Assert.True(diff <= 1, $"request {i} image {k}: max pixel difference {diff}/255");
                Assert.Equal(expected.Images[k].Infotext, results[i].Generation.Images[k].Infotext);
                Assert.Equal("parameters", PngText.Read(results[i].Files[k]).Keys.Single());
            }
        }
        var stats = engine.Stats;
        Assert.Equal(requests.Length, stats.Succeeded);
        Assert.Equal(0, stats.Queued + stats.Running);
        if (maxBatch > 1) Assert.True(stats.UNetRows > stats.UNetCalls * 2, "steps of different requests should have shared UNet calls");
        Assert.True(stats.PromptCacheHits > 0);
    }

    [Fact]
    public async Task EventsArriveInOrder()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions());
        var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 3, Seed = 1, Count = 2, Scheduler = "Euler" });
        var events = new List<JobEvent>();
        await foreach (var e in job.ReadEventsAsync().WithCancellation(new CancellationTokenSource(Patience).Token)) events.Add(e);
        Assert.IsType<JobQueued>(events[0]);
        Assert.IsType<JobStarted>(events[1]);
        Assert.IsType<JobFinished>(events[^1]);
        Assert.Equal(6, events.OfType<JobStep>().Count());
        Assert.Equal(2, events.OfType<JobImageReady>().Count());
        Assert.True(events.FindLastIndex(e => e is JobStep) < events.FindLastIndex(e => e is JobImageReady));
        Assert.Equal(JobState.Succeeded, job.State);
        Assert.Equal(6, job.StepsDone);
    }

    [Fact]
    public async Task EveryWatcherSeesEveryEventAndLateWatchersGetTheHistoryFirst()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions());
        var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 4, Seed = 3, Scheduler = "Euler" });
        using var timeout = new CancellationTokenSource(Patience);
        async Task<List<JobEvent>> Collect()
        {
            var list = new List<JobEvent>();
            await foreach (var e in job.ReadEventsAsync(timeout.Token)) list.Add(e);
            return list;
        }
        var first = Collect();
        var second = Collect();
        await job.Completion.WaitAsync(Patience);
        var late = await Collect(); // subscribes after the end: the whole history, then completes

        var a = await first;
        Assert.Equal(a, await second);
        Assert.Equal(a, late);
        Assert.IsType<JobQueued>(a[0]);
        Assert.Equal(4, a.OfType<JobStep>().Count());
        Assert.IsType<JobFinished>(a[^1]);
    }

    [Fact]
    public async Task FullQueueRefusesAtOnceWithARetryHint()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { MaxJobs = 2 });
        var a = engine.Submit(new GenerationRequest { Prompt = "a", Steps = 30 });
        var b = engine.Submit(new GenerationRequest { Prompt = "b", Steps = 30 });
        var e = Assert.Throws<QueueFullException>(() => engine.Submit(new GenerationRequest { Prompt = "c", Steps = 2 }));
        Assert.True(e.RetryAfter > TimeSpan.Zero);
        Assert.Contains("queue is full", e.Message);
        await Task.WhenAll(a.Completion, b.Completion).WaitAsync(Patience);
        var c = engine.Submit(new GenerationRequest { Prompt = "c", Steps = 2 });
        await c.Completion.WaitAsync(Patience);
        Assert.Equal(1, engine.Stats.Rejected);
    }

    [Fact]
    public async Task CancellingRandomJobsAtRandomMomentsFreesSlotsAndNeverStallsTheOthers()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { Streams = 2, MaxBatch = 3, MaxJobs = 16 });
        var random = new Random(7);
        var jobs = Enumerable.Range(0, 16).Select(i => engine.Submit(new GenerationRequest { Prompt = $"p{i}", Steps = 4 + i % 5, Seed = i })).ToArray();
        var cancelled = new HashSet<Job>();
        foreach (var job in jobs.Where((_, i) => i % 3 == 0))
        {
            await Task.Delay(random.Next(0, 40));
            if (job.Cancel()) cancelled.Add(job);
        }
        await Task.WhenAll(jobs.Select(j => j.Completion.ContinueWith(_ => { }))).WaitAsync(Patience);
        foreach (var job in jobs)
        {
            if (cancelled.Contains(job) && job.State == JobState.Cancelled) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job.Completion);
            else Assert.Equal(JobState.Succeeded, job.State);
        }
        Assert.True(cancelled.Count > 0);
        var stats = engine.Stats;
        Assert.Equal(0, stats.Queued + stats.Running);
        // All slots are free again.
        var more = Enumerable.Range(0, 16).Select(i => engine.Submit(new GenerationRequest { Prompt = "again", Steps = 2, Seed = i })).ToArray();
        await Task.WhenAll(more.Select(j => j.Completion)).WaitAsync(Patience);
    }

    [Fact]
    public async Task BoundedStressLosesNothing()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { Streams = 2, MaxBatch = 4, MaxJobs = 32 });
        int accepted = 0, rejected = 0;
        var all = new List<Job>();
        for (int i = 0; i < 200; i++)
        {
            try
            {
                all.Add(engine.Submit(new GenerationRequest { Prompt = $"stress {i % 7}", Steps = 2, Seed = i, GuidanceScale = i % 2 == 0 ? 1 : 5, Decoder = DecoderKind.Taesd }));
                accepted++;
            }
            catch (QueueFullException)
            {
                rejected++;
                await all[^1].Completion.WaitAsync(Patience);
                i--; // retry the same request, as a client honouring Retry-After would
            }
        }
        await Task.WhenAll(all.Select(j => j.Completion)).WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(200, accepted);
        Assert.All(all, j => Assert.Equal(JobState.Succeeded, j.State));
        var stats = engine.Stats;
        Assert.Equal(200, stats.Succeeded);
        Assert.Equal(rejected, stats.Rejected);
        Assert.Equal(0, stats.Queued + stats.Running);
    }

    [Fact]
    public async Task AFailingRequestEndsOnlyItselfAndTheSharedBatchGoesOn()
    {
        using var dir = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), dir.Path);
        // NaN whenever the timestep exceeds 900: 20-step txt2img starts at 951, img2img at strength 0.5 near 500.
        (AnalyticUNet.Default with { NanAboveTimestep = 900 }).WriteInto(dir.Path, 4, 32, ContractVintage.Optimum);
        using var model = ModelFolder.Open(dir.Path);
        using var engine = new DiffusionEngine(model, new EngineOptions { MaxBatch = 8 });
        var init = PipelineMathTests.InitImage();
        var good = Enumerable.Range(0, 3).Select(i => engine.Submit(new GenerationRequest { Prompt = "ok", Steps = 20, InitImage = init, Strength = 0.5, Seed = i, Scheduler = "DDIM" })).ToList();
        var bad = engine.Submit(new GenerationRequest { Prompt = "bad", Steps = 20, Seed = 9, Scheduler = "DDIM" });
        good.Add(engine.Submit(new GenerationRequest { Prompt = "ok", Steps = 20, InitImage = init, Strength = 0.4, Seed = 5, Scheduler = "Euler" }));
        await Task.WhenAll(good.Select(j => j.Completion)).WaitAsync(Patience);
        var error = await Assert.ThrowsAsync<GenerationFailedException>(() => bad.Completion.WaitAsync(Patience));
        Assert.Contains("NaN", error.Message);
        Assert.Equal(JobState.Failed, bad.State);
        Assert.All(good, j => Assert.Equal(JobState.Succeeded, j.State));
    }

    [Fact]
    public async Task SyncModeRunsTheSameJobsOneAtATime()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { Mode = EngineMode.Sync });
        var request = new GenerationRequest { Prompt = "sync", Steps = 3, Seed = 11, Count = 2 };
        var result = await engine.Submit(request).Completion.WaitAsync(Patience);
        using var sync = new StableDiffusionPipeline(_model);
        var expected = sync.Generate(request);
        Assert.Equal(expected.Images[1].Image.Pixels, result.Generation.Images[1].Image.Pixels);
        Assert.Equal(2, result.Files.Count);
    }

    [Fact]
    public void BadRequestsAreRefusedAtSubmission()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions());
        var e = Assert.Throws<AsyncDiffusionException>(() => engine.Submit(new GenerationRequest { Prompt = "x", Steps = -1 }));
        Assert.Contains("steps is -1", e.Message);
        Assert.Equal(0, engine.Stats.Submitted);
    }
}
