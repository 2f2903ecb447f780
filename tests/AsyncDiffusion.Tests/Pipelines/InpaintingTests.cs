using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Tests.Doubles;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Pipelines;

/// <summary>
/// Inpainting checked against a hand replay with analytic UNets: masked denoising with a
/// text-to-image UNet (kept region = init latents re-noised at every step), the inpainting UNet's
/// extra channels, and A1111's mask handling and final overlay.
/// </summary>
public sealed class InpaintingTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly ModelFolder _model, _inpaintModel;
    private readonly StableDiffusionPipeline _pipeline, _inpaintPipeline;
    private static readonly AnalyticUNet InpaintUNet = AnalyticUNet.Default with { Inpainting = (0.7f, 0.3f) };

    public InpaintingTests()
    {
        string folder = Path.Combine(_dir.Path, "analytic");
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum"), folder);
        AnalyticUNet.Default.WriteInto(folder, 4, 32, ContractVintage.Optimum);
        _model = ModelFolder.Open(folder);
        _pipeline = new StableDiffusionPipeline(_model);

        string inpaint = Path.Combine(_dir.Path, "analytic-inpaint");
        ModelFolderTests.CopyFolder(TinyModels.Folder("optimum", preset: "tiny-inpaint"), inpaint);
        InpaintUNet.WriteInto(inpaint, 4, 32, ContractVintage.Optimum);
        _inpaintModel = ModelFolder.Open(inpaint);
        _inpaintPipeline = new StableDiffusionPipeline(_inpaintModel);
    }

    public void Dispose()
    {
        _pipeline.Dispose();
        _inpaintPipeline.Dispose();
        _model.Dispose();
        _inpaintModel.Dispose();
        _dir.Dispose();
    }

    /// <summary>A 64×64 mask with the left <paramref name="columns"/> columns marked.</summary>
    internal static GreyImage LeftColumns(int columns, int size = 64)
    {
        var mask = GreyImage.Create(size, size);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < columns * size / 64; x++) mask.Pixels[y * size + x] = 255;
        return mask;
    }

    private static GenerationRequest Request(InpaintingOptions? inpainting, string scheduler = "Euler a", double strength = 0.75) => new()
    {
        Prompt = "a red fox", NegativePrompt = "blurry", Steps = 8, GuidanceScale = 4, Seed = 77, Scheduler = scheduler,
        InitImage = PipelineMathTests.InitImage(), Strength = strength, Inpainting = inpainting,
    };

    [Theory]
    [InlineData("Euler a", MaskedContent.Original, 1.0)]
    [InlineData("DDIM", MaskedContent.LatentNothing, 1.0)]
    [InlineData("DPM++ 2M Karras", MaskedContent.LatentNoise, 0.9)]
    [InlineData("LMS", MaskedContent.Original, 1.0)]
    public void KeptLatentsAreTheInitLatentsRenoisedAtEveryStepAndTheMaskedOnesFollowTheScheduler(string scheduler, MaskedContent fill, double multiplier)
    {
        var options = new InpaintingOptions(LeftColumns(32)) { BlurX = 0, BlurY = 0, Fill = fill };
        var request = Request(options, scheduler) with { InitialNoiseMultiplier = multiplier };
        var steps = new List<float[]>();
        var result = _pipeline.Generate(request, s => steps.Add(s.Latents.ToArray()));

        // The left half of the 8×8 latent grid is repainted; A1111's bicubic downscale rounds the edge away.
        var latentMask = Enumerable.Range(0, 64).Select(i => i % 8 < 4 ? 1f : 0f).ToArray();
        Assert.Equal(latentMask, PreparedInpainting.Prepare(options, request.InitImage!, 64, 64, 8).LatentMask);

        // A1111 fills the masked pixels from their surroundings before encoding for every masked content but "original".
        var source = fill == MaskedContent.Original ? request.InitImage! : MaskedContentFill.Apply(request.InitImage!, options.Mask);
        var replay = new HandReplay(_model, AnalyticUNet.Default).Run(request, 77, new HandReplay.Inputs { Source = source, BlendMask = latentMask, Fill = fill });
        Assert.Equal(replay.Steps.Count, steps.Count);
        var kept = new float[256];
        for (int s = 0; s < steps.Count; s++)
        {
            PipelineMathTests.AssertClose(replay.Steps[s], steps[s], $"step {s + 1}");
            // Kept positions are exactly the clean init latents noised to the next timestep with the image's own noise (clean after the last step).
            int next = replay.Start + s + 1;
            if (next < replay.Scheduler.Timesteps.Count) replay.Scheduler.AddNoise(replay.Clean!, replay.Noise!, replay.Scheduler.Timesteps[next], kept);
            else replay.Clean!.CopyTo(kept, 0);
            for (int i = 0; i < 256; i++)
                if (latentMask[i % 64] == 0) Assert.True(Math.Abs(kept[i] - steps[s][i]) <= 1e-5 + 1e-5 * Math.Abs(kept[i]), $"step {s + 1}, kept latent {i}: {steps[s][i]} vs {kept[i]}");
        }
        var info = result.Images[0].Infotext;
        Assert.Contains("Denoising strength: 0.75", info);
        if (fill == MaskedContent.LatentNoise) Assert.Contains("Masked content: latent noise", info);
        if (fill == MaskedContent.LatentNothing) Assert.Contains("Masked content: latent nothing", info);
        if (fill == MaskedContent.Original) Assert.DoesNotContain("Masked content", info);
        Assert.Equal(multiplier != 1, info.Contains("Noise multiplier: 0.9"));
    }

    [Fact]
    public void TheFinalOverlayReturnsEveryUnmaskedPixelByteForByte()
    {
        var init = PipelineMathTests.InitImage();
        var result = _pipeline.Generate(Request(new InpaintingOptions(LeftColumns(32)) { BlurX = 0, BlurY = 0 })).Images[0].Image;
        int changed = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++)
                {
                    int i = (y * 64 + x) * 3 + c;
                    if (x >= 32) Assert.Equal(init.Pixels[i], result.Pixels[i]);
                    else if (init.Pixels[i] != result.Pixels[i]) changed++;
                }
        Assert.True(changed > 1000, $"the masked half should be repainted; {changed} values changed");
    }

    [Fact]
    public void InvertingTheMaskSwapsTheRegions()
    {
        var init = PipelineMathTests.InitImage();
        var inverted = _pipeline.Generate(Request(new InpaintingOptions(LeftColumns(32)) { BlurX = 0, BlurY = 0, Invert = true })).Images[0];
        var complement = _pipeline.Generate(Request(new InpaintingOptions(LeftColumns(32).Inverted()) { BlurX = 0, BlurY = 0 })).Images[0];
        Assert.Equal(complement.Image.Pixels, inverted.Image.Pixels);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) Assert.Equal(init.Pixels[(y * 64 + x) * 3 + c], inverted.Image.Pixels[(y * 64 + x) * 3 + c]);
        Assert.Contains("Mask mode: Inpaint not masked", inverted.Infotext);
        Assert.DoesNotContain("Mask mode", complement.Infotext);
    }

    [Fact]
    public void BlurWidensTheTransitionByTheKernelRadius()
    {
        // σ = 4: a 21-tap kernel, so the overlay's edge reaches 10 px past the mask (x = 32..41) and no further.
        var init = PipelineMathTests.InitImage();
        var sharp = _pipeline.Generate(Request(new InpaintingOptions(LeftColumns(32)) { BlurX = 0, BlurY = 0 })).Images[0];
        var soft = _pipeline.Generate(Request(new InpaintingOptions(LeftColumns(32)))).Images[0];
        bool Same(RgbImage a, int x) => Enumerable.Range(0, 64).All(y => Enumerable.Range(0, 3).All(c => a.Pixels[(y * 64 + x) * 3 + c] == init.Pixels[(y * 64 + x) * 3 + c]));
        for (int x = 32; x < 64; x++) Assert.True(Same(sharp.Image, x), $"column {x} is outside the sharp mask");
        for (int x = 42; x < 64; x++) Assert.True(Same(soft.Image, x), $"column {x} is beyond the blur's reach");
        Assert.Contains(Enumerable.Range(32, 10), x => !Same(soft.Image, x));
        Assert.Contains("Mask blur: 4", soft.Infotext);
        Assert.DoesNotContain("Mask blur", sharp.Infotext);
    }

    [Fact]
    public void AnEmptyMaskReturnsTheImageUnchangedAndAFullMaskEqualsImageToImage()
    {
        var init = PipelineMathTests.InitImage();
        foreach (bool onlyMasked in new[] { false, true })
        {
            var empty = _pipeline.Generate(Request(new InpaintingOptions(GreyImage.Create(64, 64)) { OnlyMasked = onlyMasked })).Images[0];
            Assert.Equal(init.Pixels, empty.Image.Pixels);
            Assert.DoesNotContain("Inpaint area", empty.Infotext);
        }
        var full = _pipeline.Generate(Request(new InpaintingOptions(GreyImage.Filled(64, 64, 255)))).Images[0];
        var img2img = _pipeline.Generate(Request(null)).Images[0];
        Assert.Equal(img2img.Image.Pixels, full.Image.Pixels);
    }

    [Fact]
    public void OnlyMaskedGeneratesTheCropAtFullSizeAndPastesItBack()
    {
        var init = ImageCodec.ResizeAndCrop(PipelineMathTests.InitImage(), 128, 128);
        var mask = GreyImage.Create(128, 128);
        for (int y = 24; y < 40; y++)
            for (int x = 80; x < 96; x++) mask.Pixels[y * 128 + x] = 255;
        var options = new InpaintingOptions(mask) { BlurX = 0, BlurY = 0, OnlyMasked = true, Padding = 8 };
        var prepared = PreparedInpainting.Prepare(options, init, 64, 64, 8);
        Assert.Equal((72, 16, 32, 32), prepared.PasteRegion);
        var result = _pipeline.Generate(Request(options) with { InitImage = init }).Images[0];
        Assert.Equal((128, 128), (result.Image.Width, result.Image.Height));
        int changed = 0;
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 128; x++)
            {
                bool masked = x >= 80 && x < 96 && y >= 24 && y < 40;
                for (int c = 0; c < 3; c++)
                {
                    int i = (y * 128 + x) * 3 + c;
                    if (!masked) Assert.Equal(init.Pixels[i], result.Image.Pixels[i]);
                    else if (init.Pixels[i] != result.Image.Pixels[i]) changed++;
                }
            }
        Assert.True(changed > 100);
        Assert.Contains("Inpaint area: Only masked, Masked area padding: 8", result.Infotext);
        Assert.Contains("Size: 64x64", result.Infotext);
    }

    [Fact]
    public void AMaskOfAnotherSizeIsScaledAsA1111ScalesIt()
    {
        var big = LeftColumns(32, 128);
        var scaled = A1111ImageResize.Resize(big, 64, 64, ResizeMode.CropAndResize);
        var fromBig = _pipeline.Generate(Request(new InpaintingOptions(big) { BlurX = 0, BlurY = 0 })).Images[0];
        var fromScaled = _pipeline.Generate(Request(new InpaintingOptions(scaled) { BlurX = 0, BlurY = 0 })).Images[0];
        Assert.Equal(fromScaled.Image.Pixels, fromBig.Image.Pixels);
    }

    [Theory]
    [InlineData("Euler a", 0.75)]
    [InlineData("DDIM", 1.0)]
    public void TheInpaintingUNetGetsTheMaskAndTheMaskedImageLatentsEveryStep(string scheduler, double strength)
    {
        var options = new InpaintingOptions(LeftColumns(24)) { BlurX = 0, BlurY = 0 };
        var request = Request(options, scheduler, strength);
        var steps = new List<float[]>();
        _inpaintPipeline.Generate(request, s => steps.Add(s.Latents.ToArray()));

        // By hand: the 64×64 mask (columns 0–23) sampled at every 8th pixel → latent columns 0–2;
        // the masked image is the init image in [-1, 1] with those pixels set to 0 (grey).
        var condMask = Enumerable.Range(0, 64).Select(i => i % 8 < 3 ? 1f : 0f).ToArray();
        var masked = new float[3 * 64 * 64];
        LatentImageConversion.ToTensor(request.InitImage!, masked);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 24; x++) masked[c * 4096 + y * 64 + x] = 0;
        var replay = new HandReplay(_inpaintModel, InpaintUNet).Run(request, 77,
            new HandReplay.Inputs { Source = request.InitImage, ConditioningMask = condMask, MaskedImage = masked });
        Assert.Equal(replay.Steps.Count, steps.Count);
        for (int s = 0; s < steps.Count; s++) PipelineMathTests.AssertClose(replay.Steps[s], steps[s], $"step {s + 1}");

        // The extra channels matter: a replay fed another mask drifts away.
        var wrong = new HandReplay(_inpaintModel, InpaintUNet).Run(request, 77,
            new HandReplay.Inputs { Source = request.InitImage, ConditioningMask = new float[64], MaskedImage = masked });
        Assert.True(wrong.Steps[^1].Zip(steps[^1], (a, b) => Math.Abs(a - b)).Max() > 1e-2);
    }

    [Fact]
    public void TheInpaintingUNetWithoutAMaskSeesAllOnesAndAGreyImage()
    {
        var request = new GenerationRequest { Prompt = "a red fox", Steps = 5, GuidanceScale = 3, Seed = 9, Scheduler = "Euler" };
        var steps = new List<float[]>();
        _inpaintPipeline.Generate(request, s => steps.Add(s.Latents.ToArray()));
        var replay = new HandReplay(_inpaintModel, InpaintUNet).Run(request, 9,
            new HandReplay.Inputs { ConditioningMask = Enumerable.Repeat(1f, 64).ToArray(), MaskedImage = new float[3 * 64 * 64] });
        for (int s = 0; s < steps.Count; s++) PipelineMathTests.AssertClose(replay.Steps[s], steps[s], $"step {s + 1}");
    }

    [Fact]
    public void MaskWithoutInitImageAndOutOfRangeSettingsAreRejected()
    {
        var options = new InpaintingOptions(LeftColumns(32));
        var e = Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(new GenerationRequest { Prompt = "x", Inpainting = options }, _model));
        Assert.Contains("init image", e.Message);
        Assert.Contains("mask blur", Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(Request(options with { BlurX = 65 }), _model)).Message);
        Assert.Contains("padding", Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(Request(options with { Padding = -1 }), _model)).Message);
        Assert.Contains("noise multiplier", Assert.Throws<AsyncDiffusionException>(() => GenerationPlan.Create(Request(options) with { InitialNoiseMultiplier = double.NaN }, _model)).Message);
    }
}
