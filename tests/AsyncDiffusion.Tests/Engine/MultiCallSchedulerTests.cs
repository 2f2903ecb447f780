using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Engine;

/// <summary>
/// Schedulers that call the UNet more than once per step (Heun, DPM2, DPM2 a: 2n − 1 calls) or
/// step from a stored sample (singlestep) run through the one per-image state machine, alone and
/// batched with other requests, and give the same image either way.
/// </summary>
public sealed class MultiCallSchedulerTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder("optimum"), DiffusionEngine.SessionSettingsFor(new EngineOptions()));

    public void Dispose() => _model.Dispose();

    [Fact]
    public async Task MultiCallSchedulersGiveTheSameImageInTheEngineAsInTheSyncPipeline()
    {
        var init = PipelineMathTests.InitImage();
        GenerationRequest Request(string scheduler, int seed, bool img2img = false) => new()
        {
            Prompt = "a lighthouse", Steps = 3, GuidanceScale = 6, Seed = seed, Scheduler = scheduler, Width = 64, Height = 64,
            InitImage = img2img ? init : null, Strength = 0.7, Decoder = DecoderKind.Taesd,
        };
        GenerationRequest[] requests =
        [
            Request("Heun", 1), Request("DPM2 a Karras", 2), Request("DPM2", 3), Request("DPM++ 2S a", 4),
            Request("DPM++ 3M SDE Exponential", 5), Request("UniPC", 6), Request("Heun", 7, img2img: true), Request("Euler a", 8),
        ];
        using var engine = new DiffusionEngine(_model, new EngineOptions { Streams = 1, MaxBatch = 4, MaxJobs = 16 });
        var jobs = requests.Select(engine.Submit).ToArray();
        var results = await Task.WhenAll(jobs.Select(j => j.Completion)).WaitAsync(TimeSpan.FromSeconds(60));

        using var sync = new StableDiffusionPipeline(_model);
        for (int i = 0; i < requests.Length; i++)
        {
            var expected = sync.Generate(requests[i]);
            var a = expected.Images[0].Image.Pixels;
            var b = results[i].Generation.Images[0].Image.Pixels;
            int diff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1, $"{requests[i].Scheduler}: max pixel difference {diff}/255");
            Assert.Equal(expected.Images[0].Infotext, results[i].Generation.Images[0].Infotext);
        }
        // Heun's 3 steps are 5 UNet calls; img2img at 0.7 runs the last 2 steps: 3 calls.
        Assert.Equal(5, jobs[0].Plan.StepsPerImage);
        Assert.Equal(3, jobs[6].Plan.StepsPerImage);
        Assert.True(engine.Stats.UNetRows > engine.Stats.UNetCalls * 2, "steps of different requests should have shared UNet calls");
    }
}
