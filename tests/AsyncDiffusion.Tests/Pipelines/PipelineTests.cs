using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Pipelines;

/// <summary>End to end on the tiny synthetic model: bad input, cancellation, decoders, determinism.</summary>
public sealed class PipelineTests : IDisposable
{
    private readonly ModelFolder _model = ModelFolder.Open(TinyModels.Folder());
    private readonly StableDiffusionPipeline _pipeline;

    public PipelineTests() => _pipeline = new StableDiffusionPipeline(_model);

    public void Dispose()
    {
        _pipeline.Dispose();
        _model.Dispose();
    }

    [Theory]
    [InlineData(0, 64, 64, "steps is 0")]
    [InlineData(500, 64, 64, "steps is 500")]
    [InlineData(4, 60, 64, "width is 60")]
    [InlineData(4, 64, 72, "needs multiples of 16")]
    [InlineData(4, 64, 4096, "height is 4096")]
    public void BadSizesAndStepsAreRejected(int steps, int width, int height, string message)
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = steps, Width = width, Height = height }));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void UnknownSchedulerAndBadStrengthAreRejected()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 4, Scheduler = "DPM fast" }));
        Assert.Contains("Unknown scheduler 'DPM fast'", e.Message);
        var init = RgbImage.Create(64, 64);
        e = Assert.Throws<AsyncDiffusionException>(() => _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 4, InitImage = init, Strength = 1.5 }));
        Assert.Contains("strength is 1.5", e.Message);
        e = Assert.Throws<AsyncDiffusionException>(() => _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 4, InitImage = init, Strength = 0.1 }));
        Assert.Contains("no denoising step", e.Message);
    }

    [Fact]
    public void ImageToImageWithoutAVaeEncoderIsRejected()
    {
        using var dir = new TempFolder();
        ModelFolderTests.CopyFolder(TinyModels.Folder(), dir.Path);
        Directory.Delete(Path.Combine(dir.Path, "vae_encoder"), recursive: true);
        using var model = ModelFolder.Open(dir.Path);
        using var pipeline = new StableDiffusionPipeline(model);
        var e = Assert.Throws<AsyncDiffusionException>(() => pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 4, InitImage = RgbImage.Create(64, 64) }));
        Assert.Contains("no vae_encoder/", e.Message);
    }

    [Fact]
    public void CancellationStopsBetweenSteps()
    {
        using var cancel = new CancellationTokenSource();
        int steps = 0;
        Assert.ThrowsAny<OperationCanceledException>(() => _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 20 }, _ =>
        {
            if (++steps == 2) cancel.Cancel();
        }, cancel.Token));
        Assert.Equal(2, steps);
    }

    [Theory]
    [InlineData(DecoderKind.Vae)]
    [InlineData(DecoderKind.Taesd)]
    public void SameRequestGivesTheSameImage(DecoderKind decoder)
    {
        var request = new GenerationRequest { Prompt = "an astronaut", NegativePrompt = "low resolution, blurry", Steps = 5, Seed = 3, Decoder = decoder, Scheduler = "DPM++ 2M" };
        var a = _pipeline.Generate(request);
        var b = _pipeline.Generate(request);
        Assert.Equal(a.Images[0].Image.Pixels, b.Images[0].Image.Pixels);
        Assert.Equal(64, a.Images[0].Image.Width);
        Assert.True(a.Images[0].Image.Pixels.Distinct().Count() > 8, "the image should not be flat");
        Assert.Equal(5, a.Timings.UNetStepMs.Count);
        Assert.True(a.PeakMemoryBytes > 0);
        Assert.Contains("Negative prompt: low resolution, blurry", a.Images[0].Infotext);
        Assert.Contains("Sampler: DPM++ 2M", a.Images[0].Infotext);
    }

    [Fact]
    public void TheInfotextOfImageToImageCarriesTheStrength()
    {
        var result = _pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 4, Seed = 1, InitImage = RgbImage.Create(100, 80), Strength = 0.5 });
        Assert.Contains("Denoising strength: 0.5", result.Images[0].Infotext);
        Assert.Equal(64, result.Images[0].Image.Width);
    }
}
