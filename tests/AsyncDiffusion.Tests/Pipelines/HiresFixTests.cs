using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Tests.Doubles;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Pipelines;

/// <summary>
/// Hires fix and variation seeds through the synchronous pipeline, against a hand replay with the
/// analytic UNet: the first pass, the upscale (latent interpolation or decode → resize → encode),
/// the second pass starting at A1111's step of a longer schedule from the seed's noise, and the
/// noise of variation seeds.
/// </summary>
public sealed class HiresFixTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly ModelFolder _model;
    private readonly StableDiffusionPipeline _pipeline;
    private readonly HandReplay _replay;

    public HiresFixTests()
    {
        string folder = Path.Combine(_dir.Path, "analytic");
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), folder);
        AnalyticUNet.Default.WriteInto(folder, 4, 32, ContractVintage.Optimum);
        _model = ModelFolder.Open(folder);
        _pipeline = new StableDiffusionPipeline(_model);
        _replay = new HandReplay(_model, AnalyticUNet.Default);
    }

    public void Dispose()
    {
        _pipeline.Dispose();
        _model.Dispose();
        _dir.Dispose();
    }

    private static GenerationRequest Request(string upscaler) => new()
    {
        Prompt = "a red fox", NegativePrompt = "blurry", Steps = 5, GuidanceScale = 4, Seed = 321, Scheduler = "Euler",
        Hires = new HiresOptions { Scale = 2, Steps = 4, DenoisingStrength = 0.5, Upscaler = upscaler },
    };

    private (List<StepProgress> Steps, GenerationResult Result) Generate(GenerationRequest request)
    {
        var steps = new List<StepProgress>();
        var result = _pipeline.Generate(request, steps.Add);
        return (steps, result);
    }

    [Fact]
    public void LatentHiresSecondPassStartsAtA1111sStepFromTheUpscaledLatentsAndFollowsTheReplay()
    {
        var request = Request("Latent");
        var (steps, result) = Generate(request);
        Assert.Equal(Enumerable.Range(1, 9), steps.Select(s => s.Step));
        Assert.All(steps, s => Assert.Equal(9, s.Steps));
        Assert.Equal((128, 128), (result.Images[0].Image.Width, result.Images[0].Image.Height));

        var first = _replay.Run(request with { Hires = null }, 321, new HandReplay.Inputs());
        for (int i = 0; i < 5; i++) PipelineMathTests.AssertClose(first.Steps[i], steps[i].Latents.ToArray(), $"first pass step {i + 1}");

        // "Latent" is bilinear: doubling blends each latent with its neighbour ¼ : ¾ (edges clamped).
        var upscaled = DoubleBilinear(first.Steps[^1], 4, 8, 8);
        var second = ReplaySecondPass(upscaled, "Euler", 16, 16, out double firstTimestep);
        Assert.Equal(firstTimestep, steps[5].Timestep);
        Assert.Equal(4, second.Count);
        for (int i = 0; i < 4; i++) PipelineMathTests.AssertClose(second[i], steps[5 + i].Latents.ToArray(), $"second pass step {i + 1}");
        Assert.All(steps.Skip(5), s => Assert.Equal((16, 16), (s.LatentHeight, s.LatentWidth)));
    }

    [Fact]
    public void ImageUpscalerSecondPassStartsFromTheVaeEncodingOfTheLanczosResizedDecode()
    {
        var request = Request("Lanczos") with { Scheduler = "DDIM" };
        var (steps, _) = Generate(request);
        var first = _replay.Run(request with { Hires = null }, 321, new HandReplay.Inputs());

        var decoded = _model.VaeDecoder.DecodeImage(first.Steps[^1], 4, 8, 8);
        var resized = PillowResampling.Resize(decoded, 128, 128, ResampleFilter.Lanczos);
        var clean = _model.VaeEncoder!.EncodeImage(resized).Sample(NoiseGenerators.Create(NoiseGeneratorKind.Torch, 321));
        var second = ReplaySecondPass(clean, "DDIM", 16, 16, out _);
        for (int i = 0; i < 4; i++) PipelineMathTests.AssertClose(second[i], steps[5 + i].Latents.ToArray(), $"second pass step {i + 1}");
    }

    [Fact]
    public void TheSecondPassUsesItsOwnSchedulerAndPrompts()
    {
        var request = Request("Latent (nearest)") with
        {
            Hires = Request("").Hires! with { Upscaler = "Latent (nearest)", Scheduler = "DPM++ 2M", Prompt = "a fox, detailed", NegativePrompt = "" },
        };
        var (steps, result) = Generate(request);
        var first = _replay.Run(request with { Hires = null }, 321, new HandReplay.Inputs());
        var upscaled = TorchInterpolation.Resize(first.Steps[^1], 4, 8, 8, 16, 16, InterpolationMode.Nearest);
        var second = ReplaySecondPass(upscaled, "DPM++ 2M", 16, 16, out _, "a fox, detailed");
        for (int i = 0; i < 4; i++) PipelineMathTests.AssertClose(second[i], steps[5 + i].Latents.ToArray(), $"second pass step {i + 1}");

        string info = result.Images[0].Infotext;
        Assert.Contains("Size: 64x64, Model: analytic, Denoising strength: 0.5, RNG: CPU, ", info);
        // An empty hires negative prompt means the first pass's, as in A1111: no "Hires negative prompt".
        Assert.Contains(", Hires sampler: DPM++ 2M, Hires prompt: \"a fox, detailed\", Hires upscale: 2, Hires steps: 4, Hires upscaler: Latent (nearest), Version", info);
        var (_, _, parsed) = Infotext.Parse(info);
        Assert.Equal("a fox, detailed", parsed["Hires prompt"]);
        Assert.Equal("2", parsed["Hires upscale"]);
    }

    // The second pass by hand: a schedule of ⌊steps / strength⌋ = 8 steps of which the last 4 run, the seed's first noise at the new size.
    private List<float[]> ReplaySecondPass(float[] clean, string schedulerName, int height, int width, out double firstTimestep,
        string prompt = "a red fox", string negative = "blurry")
    {
        var scheduler = SchedulerRegistry.Create(schedulerName, _model.SchedulerConfig);
        scheduler.SetTimesteps(8);
        if (scheduler.HasBeginIndex) scheduler.SetBeginIndex(4);
        firstTimestep = scheduler.Timesteps[4];
        var rng = NoiseGenerators.Create(NoiseGeneratorKind.Torch, 321);
        var noise = new float[4 * height * width];
        rng.NextGaussian(noise);
        var latents = new float[noise.Length];
        scheduler.AddNoise(clean, noise, scheduler.Timesteps[4], latents);
        return _replay.Continue(prompt, negative, 4, scheduler, 4, latents, rng);
    }

    private static float[] DoubleBilinear(float[] x, int channels, int height, int width)
    {
        float At(int c, int y, int xx) => x[(c * height + Math.Clamp(y, 0, height - 1)) * width + Math.Clamp(xx, 0, width - 1)];
        // Output 2i samples i − ¼ (¾ of i, ¼ of i − 1), output 2i + 1 samples i + ¼; width first, then height.
        var rows = new float[channels * height * 2 * width];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
                for (int i = 0; i < width; i++)
                {
                    rows[(c * height + y) * 2 * width + 2 * i] = i == 0 ? At(c, y, 0) : 0.25f * At(c, y, i - 1) + 0.75f * At(c, y, i);
                    rows[(c * height + y) * 2 * width + 2 * i + 1] = i == width - 1 ? At(c, y, i) : 0.75f * At(c, y, i) + 0.25f * At(c, y, i + 1);
                }
        var result = new float[channels * 4 * height * width];
        int w2 = 2 * width;
        float Row(int c, int y, int xx) => rows[(c * height + Math.Clamp(y, 0, height - 1)) * w2 + xx];
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < height; i++)
                for (int xx = 0; xx < w2; xx++)
                {
                    result[(c * 2 * height + 2 * i) * w2 + xx] = i == 0 ? Row(c, 0, xx) : 0.25f * Row(c, i - 1, xx) + 0.75f * Row(c, i, xx);
                    result[(c * 2 * height + 2 * i + 1) * w2 + xx] = i == height - 1 ? Row(c, i, xx) : 0.75f * Row(c, i, xx) + 0.25f * Row(c, i + 1, xx);
                }
        return result;
    }

    [Fact]
    public void AVariationSeedImageFollowsTheReplayFromTheSlerpedNoise()
    {
        var request = new GenerationRequest { Prompt = "a red fox", Steps = 4, GuidanceScale = 3, Seed = 50, Subseed = 60, SubseedStrength = 0.4, Scheduler = "Euler a" };
        var (steps, result) = Generate(request);
        var seedNoise = new float[256];
        var subNoise = new float[256];
        NoiseGenerators.Create(NoiseGeneratorKind.Torch, 50).NextGaussian(seedNoise);
        NoiseGenerators.Create(NoiseGeneratorKind.Torch, 60).NextGaussian(subNoise);
        var replay = _replay.Run(request, 50, new HandReplay.Inputs { Noise = VariationNoise.Slerp(0.4, seedNoise, subNoise, 4, 8, 8) });
        for (int i = 0; i < 4; i++) PipelineMathTests.AssertClose(replay.Steps[i], steps[i].Latents.ToArray(), $"step {i + 1}");
        Assert.Contains("Seed: 50, Size: 64x64, Model: analytic, Variation seed: 60, Variation seed strength: 0.4, RNG", result.Images[0].Infotext);
    }

    [Fact]
    public void StrengthZeroGivesThePlainSeedImageByteIdentically()
    {
        var plain = new GenerationRequest { Prompt = "a red fox", Steps = 3, Seed = 7, Count = 2, Scheduler = "Euler a" };
        var expected = _pipeline.Generate(plain);
        var zero = _pipeline.Generate(plain with { Subseed = 999, SubseedStrength = 0 });
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(expected.Images[i].Image.Pixels, zero.Images[i].Image.Pixels);
            Assert.Equal(expected.Images[i].Infotext, zero.Images[i].Infotext);
        }
        Assert.DoesNotContain("Variation seed", zero.Images[0].Infotext);

        var varied = _pipeline.Generate(plain with { Subseed = 999, SubseedStrength = 0.5 });
        Assert.Equal([7L, 7L], varied.Images.Select(i => i.Seed));
        Assert.NotEqual(expected.Images[0].Image.Pixels, varied.Images[0].Image.Pixels);
        Assert.Contains("Variation seed: 1000, Variation seed strength: 0.5", varied.Images[1].Infotext);
    }

    [Fact]
    public void SeedResizeFromTheFirstPassSizeKeepsTheCompositionAcrossSizes()
    {
        // A1111's use: the 64×64 image's seed noise pasted into a 96×64 canvas.
        var (steps, result) = Generate(new GenerationRequest { Prompt = "p", Steps = 2, Seed = 5, Width = 96, Height = 64, SeedResizeFromWidth = 64, SeedResizeFromHeight = 64, Scheduler = "Euler" });
        Assert.Contains("Seed resize from: 64x64", result.Images[0].Infotext);
        var expected = new float[4 * 8 * 12];
        VariationNoise.First(NoiseGeneratorKind.Torch, 5, new Variation(0, 0, (8, 8)), 4, 8, 12, expected);
        var replay = _replay.Run(new GenerationRequest { Prompt = "p", Steps = 2, Width = 96, Height = 64, Scheduler = "Euler", GuidanceScale = 7.5 }, 5,
            new HandReplay.Inputs { Noise = expected });
        PipelineMathTests.AssertClose(replay.Steps[^1], steps[^1].Latents.ToArray(), "last step");
    }

    [Theory]
    [InlineData(64, 64, 2.0, 0, 0, 128, 128, 0, 0, 128, 128)]
    [InlineData(64, 64, 1.5, 0, 0, 96, 96, 0, 0, 96, 96)]
    [InlineData(64, 128, 2.0, 128, 0, 128, 256, 0, 0, 128, 256)]
    [InlineData(64, 128, 2.0, 0, 192, 96, 192, 0, 0, 96, 192)]
    [InlineData(64, 64, 2.0, 128, 96, 128, 128, 0, 4, 128, 96)]
    [InlineData(128, 64, 2.0, 96, 96, 192, 96, 12, 0, 96, 96)]
    public void HiresTargetsAreComputedAsA1111CalculatesThem(int width, int height, double scale, int resizeX, int resizeY,
        int upscaleX, int upscaleY, int truncateX, int truncateY, int outWidth, int outHeight)
    {
        var plan = GenerationPlan.Create(new GenerationRequest
        {
            Prompt = "p", Width = width, Height = height, Scheduler = "Euler", Hires = new HiresOptions { Scale = scale, ResizeWidth = resizeX, ResizeHeight = resizeY },
        }, _model);
        var hires = plan.Hires!;
        Assert.Equal((upscaleX, upscaleY, truncateX, truncateY), (hires.UpscaleWidth, hires.UpscaleHeight, hires.TruncateX, hires.TruncateY));
        Assert.Equal((outWidth, outHeight), (plan.OutputWidth, plan.OutputHeight));
        Assert.Equal((outHeight / 8, outWidth / 8), (hires.Pass.LatentHeight, hires.Pass.LatentWidth));
        Assert.Equal(HiresUpscaler.Default, hires.Upscaler);
        Assert.Equal(20 + 20, plan.StepsPerImage); // hr_second_pass_steps 0: the request's steps
    }

    [Theory]
    [InlineData("Euler", 4, 0.5, 8, 4, 4)]
    [InlineData("Euler", 4, 1.0, 4, 0, 4)]        // ⌊4 / 0.999⌋ = 4: every step
    [InlineData("DDIM", 3, 0.3, 10, 7, 3)]
    [InlineData("Heun", 4, 0.5, 15, 8, 7)]        // order 2: 2·8 − 1 timesteps, 2·4 − 1 calls
    public void FixedStepsRunExactlyTheRequestedStepsOfALongerSchedule(string name, int steps, double strength, int timesteps, int start, int calls)
    {
        var scheduler = SchedulerRegistry.Create(name, _model.SchedulerConfig);
        Assert.Equal(start, scheduler.SetTimestepsForFixedSteps(steps, strength));
        Assert.Equal(timesteps, scheduler.Timesteps.Count);
        Assert.Equal(calls, scheduler.Timesteps.Count - start);
    }

    [Theory]
    [InlineData("R-ESRGAN 4x+", 2.0, 0.5, "hires upscaler 'R-ESRGAN 4x+' is not available; available: Latent, Latent (antialiased)")]
    [InlineData("Latent", 1.4, 0.5, "hires width (64x64 × hires scale 1.4) is 88; this model needs multiples of 16")]
    [InlineData("Latent", 2.0, 0.0, "hires denoising strength is 0; expected a value in (0, 1]")]
    [InlineData("Latent", 70.0, 0.5, "hires fix would upscale to 4480x4480")]
    [InlineData("Latent", 40.0, 0.5, "hires width (64x64 × hires scale 40) is 2560; expected a multiple of 8 from 16 to 2048")]
    public void BadHiresSettingsAreRefusedWithWhatIsExpected(string upscaler, double scale, double strength, string message)
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(new GenerationRequest
        {
            Prompt = "p", Hires = new HiresOptions { Upscaler = upscaler, Scale = scale, DenoisingStrength = strength },
        }, _model));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void HiresIsForTxt2ImgAndImageUpscalersNeedAVaeEncoder()
    {
        var img2img = Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(new GenerationRequest
        {
            Prompt = "p", InitImage = PipelineMathTests.InitImage(), Hires = new HiresOptions(),
        }, _model));
        Assert.Contains("hires fix is for txt2img", img2img.Message);

        string folder = Path.Combine(_dir.Path, "no-encoder");
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), folder);
        Directory.Delete(Path.Combine(folder, "vae_encoder"), recursive: true);
        using var model = ModelFolder.Open(folder);
        var e = Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(new GenerationRequest { Prompt = "p", Hires = new HiresOptions { Upscaler = "Lanczos" } }, model));
        Assert.Contains("hires upscaler 'Lanczos' re-encodes the upscaled image, but model 'no-encoder' has no vae_encoder/; use a latent upscaler (Latent,", e.Message);
        Assert.NotNull(GenerationPlan.Create(new GenerationRequest { Prompt = "p", Hires = new HiresOptions { Upscaler = "Latent (bicubic antialiased)" } }, model).Hires);
    }
}
