using AsyncDiffusion.Imaging;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Pipelines;

/// <summary>The AUTOMATIC1111-style infotext of one generated image.</summary>
public static class GenerationInfotext
{
    /// <summary>The infotext of an image being generated (with its inpainting fields, as A1111 writes them).</summary>
    public static string For(DenoisingImage image) => For(image.Plan, image.Seed, image.InpaintingInfotext);

    public static string For(GenerationPlan plan, long seed, IReadOnlyList<KeyValuePair<string, string>>? inpainting = null)
    {
        var r = plan.Request;
        var p = new List<KeyValuePair<string, string>>
        {
            new("Steps", r.Steps.ToString()),
            new("Sampler", plan.SchedulerName),
            new("CFG scale", Infotext.Number(r.GuidanceScale)),
            new("Seed", seed.ToString()),
            new("Size", $"{plan.Width}x{plan.Height}"),
            new("Model", plan.ModelName),
        };
        if (r.IsImageToImage) p.Add(new("Denoising strength", Infotext.Number(r.Strength)));
        if (r.Eta > 0) p.Add(new("Eta", Infotext.Number(r.Eta)));
        if (plan.ClipSkip > 1) p.Add(new("Clip skip", plan.ClipSkip.ToString()));
        p.Add(new("RNG", r.Rng switch { NoiseGeneratorKind.Philox => "NV", NoiseGeneratorKind.Numpy => "numpy", _ => "CPU" }));
        if (r.Tiling) p.Add(new("Tiling", "True"));
        if (r.Decoder == DecoderKind.Taesd) p.Add(new("VAE", "TAESD"));
        if (inpainting is not null) p.AddRange(inpainting);
        if (r.IsImageToImage && r.InitialNoiseMultiplier != 1) p.Add(new("Noise multiplier", Infotext.Number(r.InitialNoiseMultiplier)));
        p.Add(new("Version", "AsyncDiffusion"));
        return Infotext.Format(r.Prompt, r.NegativePrompt, p);
    }
}
