using System.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// Everything a planned request needs before its first UNet step: the prompt's text states
/// (through the prompt cache), the init image's latents for img2img, and one
/// <see cref="DenoisingImage"/> per seed with its initial noise. Both drivers prepare requests
/// only through here.
/// </summary>
public sealed class RequestPreparation(ModelFolder model, PromptCache prompts)
{
    public PromptCache Prompts => prompts;

    public IReadOnlyList<DenoisingImage> Prepare(GenerationPlan plan, StageTimings timings, CancellationToken cancellation)
    {
        var request = plan.Request;
        var prompt = prompts.Encode(request.Prompt, request.NegativePrompt, request.UsesGuidance, timings, cancellation);
        InitImageLatents? init = null;
        if (request.InitImage is { } image)
        {
            var clock = Stopwatch.StartNew();
            var sized = ImageCodec.ResizeAndCrop(image, plan.Width, plan.Height);
            init = model.VaeEncoder!.EncodeImage(sized, cancellation);
            timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
        }
        return Enumerable.Range(0, plan.Seeds.Length).Select(i => DenoisingImage.Start(plan, i, prompt, init)).ToArray();
    }
}
