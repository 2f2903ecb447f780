using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>What jobs keep once they no longer need it: uploads after preparation, results beyond the retention budget.</summary>
public sealed class JobRetentionTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder("optimum"), DiffusionEngine.SessionSettingsFor(new EngineOptions()));
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public void Dispose() => _model.Dispose();

    [Theory]
    [InlineData(EngineMode.Async)]
    [InlineData(EngineMode.Sync)]
    public async Task AFinishedJobHoldsNoDecodedUploadAndStillReadsAsImg2Img(EngineMode mode)
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { Mode = mode });
        var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 4, Seed = 3, InitImage = PipelineMathTests.InitImage(), Strength = 0.5 });
        var result = await job.Completion.WaitAsync(Patience);
        Assert.Null(job.Request.InitImage);
        Assert.True(job.Request.IsImageToImage);
        Assert.Contains("Denoising strength: 0.5", result.Generation.Images[0].Infotext);
        Assert.Equal(job.Plan.StepsPerImage, job.StepsTotal); // the plan still knows its img2img schedule
    }

    [Fact]
    public async Task AFinishedInpaintingJobHoldsNeitherItsUploadNorItsMask()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions());
        var init = PipelineMathTests.InitImage();
        var mask = GreyImage.Create(init.Width, init.Height);
        Array.Fill(mask.Pixels, (byte)255, 0, mask.Pixels.Length / 2);
        var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 4, Seed = 3, InitImage = init, Strength = 0.5, Inpainting = new InpaintingOptions(mask) { BlurX = 0, BlurY = 0 } });
        var result = await job.Completion.WaitAsync(Patience);
        Assert.Null(job.Request.InitImage);
        Assert.Null(job.Request.Inpainting);
        Assert.True(job.Request.IsImageToImage);
        Assert.Contains("Denoising strength: 0.5", result.Generation.Images[0].Infotext);
    }

    [Fact]
    public async Task AJobCancelledWhileQueuedLetsGoOfItsUpload()
    {
        using var engine = new DiffusionEngine(_model, new EngineOptions { MaxJobs = 4 });
        var blocker = engine.Submit(new GenerationRequest { Prompt = "slow", Steps = 100, Width = 256, Height = 256 });
        var queued = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 4, InitImage = PipelineMathTests.InitImage(), Strength = 0.5 });
        queued.Cancel();
        blocker.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued.Completion.WaitAsync(Patience));
        Assert.Null(queued.Request.InitImage);
    }

    [Fact]
    public async Task FinishedResultsAreKeptWithinTheirByteBudget()
    {
        // A 64×64 result holds a PNG (~12 KB of noise) and 12 KB of pixels: a 100 KB budget keeps only a few.
        using var engine = new DiffusionEngine(_model, new EngineOptions { RetainedResultBytes = 100_000 });
        var jobs = new List<Job>();
        for (int i = 0; i < 12; i++)
        {
            var job = engine.Submit(new GenerationRequest { Prompt = "x", Steps = 1, GuidanceScale = 1, Seed = i });
            await job.Completion.WaitAsync(Patience);
            jobs.Add(job);
        }
        Assert.NotNull(engine.Find(jobs[^1].Id));
        Assert.Null(engine.Find(jobs[0].Id));
        int kept = jobs.Count(j => engine.Find(j.Id) is not null);
        Assert.InRange(kept, 1, 8);
    }
}
