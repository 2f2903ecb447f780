using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>
/// Hires fix and variation seeds in the engine: an image goes first pass → upscale (in the VAE
/// stage) → second pass through the same queues, its second-pass steps batched with other
/// requests' steps of the same size, and comes out as the synchronous pipeline makes it.
/// </summary>
public sealed class HiresEngineTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(180);

    private static GenerationRequest[] Requests() =>
    [
        new() { Prompt = "hires latent", Steps = 3, Seed = 11, Scheduler = "Euler a", GuidanceScale = 5,
            Hires = new HiresOptions { Steps = 2, DenoisingStrength = 0.6 } },
        new() { Prompt = "plain at the hires size", Steps = 4, Seed = 12, Scheduler = "DPM++ 2M", Width = 128, Height = 128 },
        new() { Prompt = "hires lanczos, two images, own prompt", Steps = 2, Seed = 13, Count = 2, Scheduler = "Euler", GuidanceScale = 1,
            SubseedStrength = 0.3, Subseed = 40, Hires = new HiresOptions { Upscaler = "Lanczos", Steps = 3, DenoisingStrength = 0.5, Prompt = "sharper", Scheduler = "DDIM" } },
        new() { Prompt = "plain small", Steps = 5, Seed = 14, Scheduler = "Euler" },
        new() { Prompt = "hires resize with a crop", Steps = 2, Seed = 15, Width = 64, Height = 64, Scheduler = "Heun",
            Hires = new HiresOptions { ResizeWidth = 128, ResizeHeight = 96, Upscaler = "Latent (bicubic antialiased)" } },
        new() { Prompt = "variation only", Steps = 3, Seed = 16, Subseed = 3, SubseedStrength = 0.7, SeedResizeFromWidth = 48, SeedResizeFromHeight = 80, Scheduler = "Euler a" },
    ];

    [Theory]
    [InlineData("tiny")]
    [InlineData("tiny-inpaint")] // the second pass gets the whole-image conditioning at its size
    public async Task HiresAndVariationRequestsBatchedWithOthersMatchTheSyncPipeline(string preset)
    {
        using var model = ModelFolder.Open(TinyModels.Folder("optimum", preset: preset), DiffusionEngine.SessionSettingsFor(new EngineOptions()));
        using var engine = new DiffusionEngine(model, new EngineOptions { Streams = 1, MaxBatch = 4, MaxJobs = 64 });
        var requests = Requests();
        var jobs = requests.Select(engine.Submit).ToArray();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion)).WaitAsync(Patience);

        using var sync = new StableDiffusionPipeline(model);
        for (int i = 0; i < requests.Length; i++)
        {
            // The engine resolved the seeds; replay with them.
            var plan = jobs[i].Plan;
            var expected = sync.Generate(requests[i] with { Seed = plan.Seeds[0], Subseed = plan.Subseeds[0] });
            Assert.Equal((expected.Width, expected.Height), (results[i].Generation.Width, results[i].Generation.Height));
            for (int k = 0; k < expected.Images.Count; k++)
            {
                var a = expected.Images[k].Image;
                var b = results[i].Generation.Images[k].Image;
                Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
                int diff = a.Pixels.Zip(b.Pixels, (x, y) => Math.Abs(x - y)).Max();
                Assert.True(diff <= 1, $"request {i} image {k}: max pixel difference {diff}/255");
                Assert.Equal(expected.Images[k].Infotext, results[i].Generation.Images[k].Infotext);
            }
            Assert.Equal(plan.Seeds.Length * plan.StepsPerImage, jobs[i].StepsDone);
        }
        Assert.Equal((128, 128), (results[0].Generation.Images[0].Image.Width, results[0].Generation.Images[0].Image.Height));
        Assert.Equal((128, 96), (results[4].Generation.Images[0].Image.Width, results[4].Generation.Images[0].Image.Height));
        Assert.True(results[0].Generation.Timings.HiresUpscaleMs > 0);
        var stats = engine.Stats;
        Assert.True(stats.UNetRows > stats.UNetCalls * 2, $"steps of different requests should have shared UNet calls ({stats.UNetRows} rows in {stats.UNetCalls} calls)");
    }
}
