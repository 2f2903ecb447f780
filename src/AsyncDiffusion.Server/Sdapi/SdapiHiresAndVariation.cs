using System.Text.Json;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>
/// A1111's hires-fix fields (<c>enable_hr</c>, <c>hr_scale</c>, <c>hr_resize_x/y</c>,
/// <c>hr_upscaler</c>, <c>hr_second_pass_steps</c>, <c>denoising_strength</c>,
/// <c>hr_sampler_name</c>, <c>hr_scheduler</c>, <c>hr_prompt</c>, <c>hr_negative_prompt</c>) and
/// variation-seed fields (<c>subseed</c>, <c>subseed_strength</c>, <c>seed_resize_from_w/h</c>,
/// <c>seed_enable_extras</c>), with A1111's defaults, and the upscaler catalogue it lists.
/// </summary>
internal static class SdapiHiresAndVariation
{
    public static GenerationRequest Apply(JsonElement b, GenerationRequest request, ModelCatalog catalog, bool img2img)
    {
        // A1111: without seed extras, no variation and no resize.
        bool extras = b.Bool("seed_enable_extras") ?? true;
        request = request with
        {
            Subseed = extras ? b.Integer("subseed") ?? -1 : -1,
            SubseedStrength = extras ? b.Number("subseed_strength") ?? 0 : 0,
            SeedResizeFromWidth = extras ? b.Int32("seed_resize_from_w") ?? -1 : 0,
            SeedResizeFromHeight = extras ? b.Int32("seed_resize_from_h") ?? -1 : 0,
        };
        if (img2img || !(b.Bool("enable_hr") ?? false)) return request;
        return request with
        {
            Hires = new HiresOptions
            {
                Scale = b.Number("hr_scale") ?? 2.0,
                ResizeWidth = b.Int32("hr_resize_x") ?? 0,
                ResizeHeight = b.Int32("hr_resize_y") ?? 0,
                Upscaler = b.String("hr_upscaler"),
                Steps = b.Int32("hr_second_pass_steps") ?? 0,
                DenoisingStrength = b.Number("denoising_strength") ?? 0.75,
                Scheduler = HiresScheduler(b, catalog),
                Prompt = b.String("hr_prompt"),
                NegativePrompt = b.String("hr_negative_prompt"),
            },
        };
    }

    /// <summary><c>/sdapi/v1/upscalers</c>: the image upscalers hires fix can use, in A1111's shape.</summary>
    public static object Upscalers() => HiresUpscaler.ImageUpscalers.Select(u => new
    {
        name = u.Name, model_name = (string?)null, model_path = (string?)null, model_url = (string?)null, scale = 4.0,
    });

    /// <summary><c>/sdapi/v1/latent-upscale-modes</c>.</summary>
    public static object LatentUpscaleModes() => HiresUpscaler.LatentModes.Select(u => new { name = u.Name });

    // A1111: hr_sampler_name and hr_scheduler default to the first pass's sampler and schedule type.
    private static string? HiresScheduler(JsonElement b, ModelCatalog catalog)
    {
        string? sampler = Named(b.String("hr_sampler_name"), "Use same sampler"), type = Named(b.String("hr_scheduler"), "Use same scheduler");
        if (sampler is null && type is null) return null;
        try
        {
            return SamplerCatalogue.SchedulerFor(sampler ?? b.String("sampler_name") ?? b.String("sampler_index"), type ?? b.String("scheduler"),
                catalog.Engine.Model.SchedulerConfig);
        }
        catch (BadRequestException e)
        {
            throw new BadRequestException(sampler is not null && e.Field == "sampler_name" ? "hr_sampler_name" : "hr_scheduler", $"hires: {e.Message}");
        }
    }

    private static string? Named(string? value, string same) => string.IsNullOrWhiteSpace(value) || value == same ? null : value;
}
