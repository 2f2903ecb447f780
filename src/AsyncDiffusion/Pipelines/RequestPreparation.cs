using System.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>What every image of one request shares once prepared: text states, init latents, the processed mask, the inpainting UNet's extra inputs.</summary>
public sealed record RequestInputs(PromptEmbeddings Prompt, InitImageLatents? Init, PreparedInpainting? Inpainting, InpaintingConditioning? Conditioning)
{
    /// <summary>Hires fix's second pass: its prompts' text states (the first pass's when it has none of its own).</summary>
    public PromptEmbeddings? HiresPrompt { get; init; }

    /// <summary>Hires fix with an inpainting UNet: the whole-image conditioning at the second pass's size.</summary>
    public InpaintingConditioning? HiresConditioning { get; init; }
}

/// <summary>
/// Everything a planned request needs before its first UNet step: the prompt's text states
/// (through the prompt cache), the init image's latents for img2img, the mask processed for
/// inpainting, the masked image's latents for an inpainting UNet, hires fix's second-pass prompts
/// and conditioning, and one <see cref="DenoisingImage"/> per seed with its initial noise. Both drivers prepare requests
/// only through here.
/// </summary>
public sealed class RequestPreparation(ModelFolder model, PromptCache prompts)
{
    public PromptCache Prompts => prompts;

    public IReadOnlyList<DenoisingImage> Prepare(GenerationPlan plan, StageTimings timings, CancellationToken cancellation)
    {
        var request = plan.Request;
        var prompt = prompts.Encode(request.Prompt, request.NegativePrompt, request.UsesGuidance, plan.ClipSkip, timings, cancellation);
        InitImageLatents? init = null;
        PreparedInpainting? inpainting = null;
        InpaintingConditioning? conditioning = null;
        var clock = Stopwatch.StartNew();
        if (request.InitImage is { } image)
        {
            RgbImage sized;
            if (request.Inpainting is { } options)
            {
                inpainting = PreparedInpainting.Prepare(options, image, plan.Width, plan.Height, model.VaeScaleFactor);
                sized = inpainting.Source;
            }
            else sized = ImageCodec.ResizeAndCrop(image, plan.Width, plan.Height);
            init = Encoder(request).EncodeImage(sized, cancellation);
        }
        if (model.UNet.IsInpainting) conditioning = InpaintingConditioning.Prepare(Encoder(request), plan, inpainting, cancellation);
        InpaintingConditioning? hiresConditioning = null;
        if (plan.Hires is { } hires && model.UNet.IsInpainting)
            hiresConditioning = InpaintingConditioning.WholeImage(Encoder(request), hires.Width, hires.Height, hires.Pass.LatentWidth, hires.Pass.LatentHeight, cancellation);
        if (init is not null || conditioning is not null) timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
        var hiresPrompt = plan.Hires is { HasOwnPrompts: true } own
            ? prompts.Encode(own.Prompt, own.NegativePrompt, request.UsesGuidance, plan.ClipSkip, timings, cancellation)
            : prompt;
        var inputs = new RequestInputs(prompt, init, inpainting, conditioning) { HiresPrompt = hiresPrompt, HiresConditioning = hiresConditioning };
        return Enumerable.Range(0, plan.Seeds.Length).Select(i => DenoisingImage.Start(plan, i, inputs)).ToArray();
    }

    // Seamless tiling pads the VAE encoder's convolutions circularly too, as A1111 does.
    private VaeEncoder Encoder(GenerationRequest request) => request.Tiling ? model.VaeEncoder!.Circular : model.VaeEncoder!;
}
