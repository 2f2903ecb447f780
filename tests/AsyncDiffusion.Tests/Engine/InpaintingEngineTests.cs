using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>Inpainting requests in the engine, batched with other requests, give the synchronous pipeline's images.</summary>
public sealed class InpaintingEngineTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private static IEnumerable<GenerationRequest> MixedRequests()
    {
        var init = PipelineMathTests.InitImage();
        string[] schedulers = ["Euler a", "DPM++ 2M Karras", "DDIM", "Euler"];
        for (int i = 0; i < 8; i++)
            yield return new GenerationRequest
            {
                Prompt = $"request {i % 3}",
                Steps = 3 + i % 3,
                GuidanceScale = i % 4 == 0 ? 1.0 : 5.0,
                Seed = 500 + i,
                Scheduler = schedulers[i % schedulers.Length],
                Width = 64,
                Height = 64,
                Count = i == 5 ? 2 : 1,
                InitImage = i % 4 == 3 ? null : init,
                Strength = 0.7,
                Inpainting = (i % 4) switch
                {
                    0 => new InpaintingOptions(InpaintingTests.LeftColumns(32)),
                    1 => new InpaintingOptions(InpaintingTests.LeftColumns(16)) { Invert = true, Fill = MaskedContent.LatentNoise, BlurX = 0, BlurY = 0 },
                    2 => null, // plain img2img
                    _ => null, // txt2img
                },
            };
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("tiny-inpaint")]
    public async Task InpaintingRequestsBatchedWithOthersMatchTheSyncPipeline(string preset)
    {
        using var model = ModelFolder.Open(TinyModels.Folder("optimum", preset: preset), DiffusionEngine.SessionSettingsFor(new EngineOptions()));
        using var engine = new DiffusionEngine(model, new EngineOptions { Streams = 1, MaxBatch = 4, MaxJobs = 64 });
        var requests = MixedRequests().ToArray();
        var jobs = requests.Select(engine.Submit).ToArray();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion)).WaitAsync(Patience);

        using var sync = new StableDiffusionPipeline(model);
        for (int i = 0; i < requests.Length; i++)
        {
            var expected = sync.Generate(requests[i]);
            for (int k = 0; k < expected.Images.Count; k++)
            {
                var a = expected.Images[k].Image.Pixels;
                var b = results[i].Generation.Images[k].Image.Pixels;
                int diff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
                Assert.True(diff <= 1, $"request {i} image {k}: max pixel difference {diff}/255");
                Assert.Equal(expected.Images[k].Infotext, results[i].Generation.Images[k].Infotext);
            }
        }
        var stats = engine.Stats;
        Assert.True(stats.UNetRows > stats.UNetCalls * 2, $"steps of different requests should have shared UNet calls ({stats.UNetRows} rows in {stats.UNetCalls} calls)");
    }
}
