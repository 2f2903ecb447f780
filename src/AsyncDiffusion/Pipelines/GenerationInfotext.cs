using System.Globalization;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Pipelines;

/// <summary>The AUTOMATIC1111-style infotext of one generated image, its keys in A1111's order and spelling.</summary>
public static class GenerationInfotext
{
    /// <summary>The infotext of an image being generated (with its inpainting fields, as A1111 writes them).</summary>
    public static string For(DenoisingImage image) => For(image.Plan, image.Index, image.InpaintingInfotext);

    public static string For(GenerationPlan plan, int index, IReadOnlyList<KeyValuePair<string, string>>? inpainting = null)
    {
        var r = plan.Request;
        var p = new List<KeyValuePair<string, string>>
        {
            new("Steps", r.Steps.ToString(CultureInfo.InvariantCulture)),
            new("Sampler", plan.SchedulerName),
            new("CFG scale", Infotext.Number(r.GuidanceScale)),
            new("Seed", plan.Seeds[index].ToString(CultureInfo.InvariantCulture)),
            new("Size", $"{plan.Width}x{plan.Height}"),
            new("Model", plan.ModelName),
        };
        if (r.SubseedStrength != 0)
        {
            p.Add(new("Variation seed", plan.Subseeds[index].ToString(CultureInfo.InvariantCulture)));
            p.Add(new("Variation seed strength", Infotext.Number(r.SubseedStrength)));
        }
        if (r.SeedResizeFromWidth > 0 && r.SeedResizeFromHeight > 0) p.Add(new("Seed resize from", $"{r.SeedResizeFromWidth}x{r.SeedResizeFromHeight}"));
        if (r.IsImageToImage) p.Add(new("Denoising strength", Infotext.Number(r.Strength)));
        else if (plan.Hires is { } hires) p.Add(new("Denoising strength", Infotext.Number(hires.Strength)));
        if (r.Eta > 0) p.Add(new("Eta", Infotext.Number(r.Eta)));
        if (plan.ClipSkip > 1) p.Add(new("Clip skip", plan.ClipSkip.ToString()));
        p.Add(new("RNG", r.Rng switch { NoiseGeneratorKind.Philox => "NV", NoiseGeneratorKind.Numpy => "numpy", _ => "CPU" }));
        if (r.Tiling) p.Add(new("Tiling", "True"));
        if (r.Decoder == DecoderKind.Taesd) p.Add(new("VAE", "TAESD"));
        if (inpainting is not null) p.AddRange(inpainting);
        if (r.IsImageToImage && r.InitialNoiseMultiplier != 1) p.Add(new("Noise multiplier", Infotext.Number(r.InitialNoiseMultiplier)));
        if (plan.Hires is { } pass) p.AddRange(Hires(plan, pass));
        p.Add(new("Version", "AsyncDiffusion"));
        return Infotext.Format(r.Prompt, r.NegativePrompt, p);
    }

    // A1111 1.9+'s extra generation parameters of hires fix, in the order its txt2img init adds them.
    private static IEnumerable<KeyValuePair<string, string>> Hires(GenerationPlan plan, HiresPass hires)
    {
        var asked = plan.Request.Hires!;
        if (hires.SchedulerName != plan.SchedulerName) yield return new("Hires sampler", hires.SchedulerName);
        if (hires.Prompt != plan.Request.Prompt) yield return new("Hires prompt", hires.Prompt);
        if (hires.NegativePrompt != plan.Request.NegativePrompt) yield return new("Hires negative prompt", hires.NegativePrompt);
        if (asked.ResizeWidth == 0 && asked.ResizeHeight == 0) yield return new("Hires upscale", Infotext.Number(asked.Scale));
        else yield return new("Hires resize", $"{asked.ResizeWidth}x{asked.ResizeHeight}");
        if (asked.Steps != 0) yield return new("Hires steps", asked.Steps.ToString(CultureInfo.InvariantCulture));
        if (asked.Upscaler is not null) yield return new("Hires upscaler", hires.Upscaler.Name);
    }
}
