using System.Text.Json;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Jobs;

/// <summary>
/// The native jobs API's hires fix (a <c>hires</c> object: scale, resize_width, resize_height,
/// upscaler, steps, denoising_strength, scheduler, prompt, negative_prompt — the CLI's
/// <c>--hires-*</c> flags) and variation seeds (subseed, subseed_strength,
/// seed_resize_from_width, seed_resize_from_height).
/// </summary>
internal static class JobsHiresAndVariation
{
    public static GenerationRequest Apply(JsonElement b, GenerationRequest request)
    {
        request = request with
        {
            Subseed = b.Integer("subseed") ?? -1,
            SubseedStrength = b.Number("subseed_strength") ?? 0,
            SeedResizeFromWidth = b.Int32("seed_resize_from_width") ?? 0,
            SeedResizeFromHeight = b.Int32("seed_resize_from_height") ?? 0,
        };
        if (b.Field("hires") is not { } h) return request;
        if (h.ValueKind != JsonValueKind.Object)
            throw new BadRequestException("hires", $"hires is {h.GetRawText()}; expected an object such as {{\"scale\": 2, \"denoising_strength\": 0.6}}");
        return request with
        {
            Hires = new HiresOptions
            {
                Scale = h.Number("scale") ?? 2.0,
                ResizeWidth = h.Int32("resize_width") ?? 0,
                ResizeHeight = h.Int32("resize_height") ?? 0,
                Upscaler = h.String("upscaler"),
                Steps = h.Int32("steps") ?? 0,
                DenoisingStrength = h.Number("denoising_strength") ?? 0.75,
                Scheduler = h.String("scheduler"),
                Prompt = h.String("prompt"),
                NegativePrompt = h.String("negative_prompt"),
            },
        };
    }
}
