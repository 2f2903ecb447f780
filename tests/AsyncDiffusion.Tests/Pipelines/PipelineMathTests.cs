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
/// The pipeline's arithmetic, checked against a hand replay with a UNet whose output is a known
/// function: initial noise, scaling, classifier-free guidance, scheduler steps, img2img start.
/// </summary>
public sealed class PipelineMathTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly ModelFolder _model;
    private readonly StableDiffusionPipeline _pipeline;
    private readonly AnalyticUNet _unet = AnalyticUNet.Default;

    public PipelineMathTests()
    {
        string folder = Path.Combine(_dir.Path, "analytic");
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), folder);
        _unet.WriteInto(folder, 4, 32, ContractVintage.Optimum);
        _model = ModelFolder.Open(folder);
        _pipeline = new StableDiffusionPipeline(_model);
    }

    public void Dispose()
    {
        _pipeline.Dispose();
        _model.Dispose();
        _dir.Dispose();
    }

    [Theory]
    [InlineData("Euler a", 7.5, NoiseGeneratorKind.Torch)]
    [InlineData("DPM++ 2M Karras", 5.0, NoiseGeneratorKind.Numpy)]
    [InlineData("DDIM", 1.0, NoiseGeneratorKind.Philox)]
    [InlineData("PNDM", 3.0, NoiseGeneratorKind.Torch)]
    public void TextToImageLatentsFollowTheHandReplayStepByStep(string scheduler, double cfg, NoiseGeneratorKind rng)
    {
        var request = new GenerationRequest { Prompt = "a red fox", NegativePrompt = "blurry", Steps = 6, GuidanceScale = cfg, Seed = 1234, Scheduler = scheduler, Rng = rng, Decoder = DecoderKind.Vae };
        var steps = new List<float[]>();
        var result = _pipeline.Generate(request, s => steps.Add(s.Latents.ToArray()));

        var replay = Replay(request, 1234, strengthStart: null);
        Assert.Equal(replay.Count, steps.Count);
        for (int i = 0; i < steps.Count; i++) AssertClose(replay[i], steps[i], $"step {i + 1}");

        // The decoder receives latents ÷ scaling factor and its output maps to bytes as diffusers does.
        var scaled = replay[^1].Select(v => v / (float)_model.ScalingFactor).ToArray();
        var (pixels, shape) = _model.VaeDecoder.Decode(scaled, [1, 4, 8, 8]);
        var expected = LatentImageConversion.ToImage(pixels, 0, (int)shape[3], (int)shape[2]);
        int maxDiff = expected.Pixels.Zip(result.Images[0].Image.Pixels, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= 1, $"decoded image differs by {maxDiff}/255");
    }

    [Fact]
    public void GuidanceAtOrBelowOneRunsOnlyTheConditionalHalf()
    {
        var request = new GenerationRequest { Prompt = "a red fox", NegativePrompt = "this must not matter", Steps = 4, GuidanceScale = 1.0, Seed = 5, Scheduler = "Euler" };
        var withNegative = new List<float[]>();
        _pipeline.Generate(request, s => withNegative.Add(s.Latents.ToArray()));
        var without = new List<float[]>();
        _pipeline.Generate(request with { NegativePrompt = "" }, s => without.Add(s.Latents.ToArray()));
        Assert.Equal(without[^1], withNegative[^1]);
    }

    [Fact]
    public void GuidanceAsTwoCallsEqualsGuidanceAsOneBatch()
    {
        var request = new GenerationRequest { Prompt = "a red fox", Steps = 4, GuidanceScale = 7, Seed = 9, Scheduler = "Euler a" };
        var batch = new List<float[]>();
        _pipeline.Generate(request, s => batch.Add(s.Latents.ToArray()));
        var split = new List<float[]>();
        _pipeline.Generate(request with { CfgAsBatch = false }, s => split.Add(s.Latents.ToArray()));
        for (int i = 0; i < batch.Count; i++) AssertClose(batch[i], split[i], $"step {i + 1}");
    }

    [Theory]
    [InlineData("DDIM", 0.5)]
    [InlineData("Euler a", 0.75)]
    [InlineData("LCM", 0.6)]
    public void ImageToImageStartsFromTheNoisedEncodingAndFollowsTheReplay(string scheduler, double strength)
    {
        var init = InitImage();
        var request = new GenerationRequest { Prompt = "a red fox", Steps = 8, GuidanceScale = 4, Seed = 77, Scheduler = scheduler, InitImage = init, Strength = strength };
        var steps = new List<float[]>();
        _pipeline.Generate(request, s => steps.Add(s.Latents.ToArray()));
        var replay = Replay(request, 77, strengthStart: strength);
        Assert.Equal(replay.Count, steps.Count);
        for (int i = 0; i < steps.Count; i++) AssertClose(replay[i], steps[i], $"step {i + 1}");
    }

    [Fact]
    public void BatchImagesUseConsecutiveSeedsAndMatchSingleRequests()
    {
        var request = new GenerationRequest { Prompt = "a red fox", Steps = 3, Seed = 100, Count = 2, Scheduler = "Euler a" };
        var both = _pipeline.Generate(request);
        Assert.Equal(new long[] { 100, 101 }, both.Images.Select(i => i.Seed));
        var second = _pipeline.Generate(request with { Seed = 101, Count = 1 });
        Assert.Equal(second.Images[0].Image.Pixels, both.Images[1].Image.Pixels);
        Assert.NotEqual(both.Images[0].Image.Pixels, both.Images[1].Image.Pixels);
    }

    [Fact]
    public void RandomSeedIsReportedAndReproducesTheImage()
    {
        var first = _pipeline.Generate(new GenerationRequest { Prompt = "a red fox", Steps = 3, Seed = -1 });
        long seed = first.Images[0].Seed;
        Assert.InRange(seed, 0, uint.MaxValue);
        var again = _pipeline.Generate(new GenerationRequest { Prompt = "a red fox", Steps = 3, Seed = seed });
        Assert.Equal(first.Images[0].Image.Pixels, again.Images[0].Image.Pixels);
        Assert.Contains($"Seed: {seed}", first.Images[0].Infotext);
    }

    /// <summary>The whole txt2img/img2img loop written out with the library's parts and the analytic UNet on the host.</summary>
    private List<float[]> Replay(GenerationRequest r, long seed, double? strengthStart)
    {
        var cond = _model.TextEncoder.Encode(_model.Tokenizer.Encode(r.Prompt).InputIds, 1);
        var uncond = _model.TextEncoder.Encode(_model.Tokenizer.Encode(r.NegativePrompt).InputIds, 1);
        var scheduler = SchedulerRegistry.Create(r.Scheduler!, _model.SchedulerConfig);
        var rng = NoiseGenerators.Create(r.Rng, (ulong)seed);
        var latents = new float[4 * 8 * 8];
        int start = 0;
        if (strengthStart is double strength)
        {
            start = scheduler.SetTimestepsForStrength(r.Steps, strength);
            var tensor = new float[3 * 64 * 64];
            LatentImageConversion.ToTensor(r.InitImage!, tensor);
            var (moments, _) = _model.VaeEncoder!.Encode(tensor, [1, 3, 64, 64]);
            var eps = new float[latents.Length];
            rng.NextGaussian(eps);
            var clean = new float[latents.Length];
            for (int i = 0; i < clean.Length; i++)
                clean[i] = (moments[i] + MathF.Exp(0.5f * Math.Clamp(moments[clean.Length + i], -30f, 20f)) * eps[i]) * (float)_model.ScalingFactor;
            var noise = new float[latents.Length];
            rng.NextGaussian(noise);
            scheduler.AddNoise(clean, noise, scheduler.Timesteps[start], latents);
        }
        else
        {
            scheduler.SetTimesteps(r.Steps);
            rng.NextGaussian(latents);
            for (int i = 0; i < latents.Length; i++) latents[i] *= (float)scheduler.InitNoiseSigma;
        }

        var trajectory = new List<float[]>();
        var scaled = new float[latents.Length];
        var outCond = new float[latents.Length];
        var outUncond = new float[latents.Length];
        var guided = new float[latents.Length];
        for (int s = start; s < scheduler.Timesteps.Count; s++)
        {
            double t = scheduler.Timesteps[s];
            scheduler.ScaleModelInput(latents, t, scaled);
            _unet.Evaluate(scaled, t, cond, outCond);
            if (r.GuidanceScale > 1)
            {
                _unet.Evaluate(scaled, t, uncond, outUncond);
                for (int k = 0; k < guided.Length; k++) guided[k] = outUncond[k] + (float)r.GuidanceScale * (outCond[k] - outUncond[k]);
            }
            else outCond.CopyTo(guided, 0);
            scheduler.Step(guided, t, latents, rng.NextGaussian);
            trajectory.Add(latents.ToArray());
        }
        return trajectory;
    }

    internal static void AssertClose(float[] expected, float[] got, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - got[i]) <= 1e-4 + 1e-4 * Math.Abs(expected[i]), $"{what}[{i}]: expected {expected[i]}, got {got[i]}");
    }

    internal static RgbImage InitImage()
    {
        var chw = TestPatterns.Chw("photo", 128);
        var image = RgbImage.Create(128, 128);
        for (int i = 0; i < 128 * 128; i++)
            for (int c = 0; c < 3; c++) image.Pixels[i * 3 + c] = (byte)Math.Round(chw[c * 128 * 128 + i] * 255);
        return ImageCodec.ResizeAndCrop(image, 64, 64);
    }
}
