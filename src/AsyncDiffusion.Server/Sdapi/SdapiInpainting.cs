using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>
/// AUTOMATIC1111's img2img mask fields → <see cref="InpaintingOptions"/>, with A1111's API
/// defaults (which differ from its web UI: "only masked" with padding 0, masked content "fill").
/// </summary>
internal static class SdapiInpainting
{
    /// <summary>The inpainting options of an img2img body; null when it has no mask.</summary>
    public static InpaintingOptions? Read(JsonElement b, ServerOptions options)
    {
        if (b.Field("mask") is not { } upload || UploadedImages.IsBlank(upload)) return null;
        bool round = b.Bool("mask_round") ?? true;
        var mask = InpaintMasks.FromImage(UploadedImages.RgbaFromBase64(upload, "mask", options.MaxImagePixels), round);
        int blurX, blurY;
        if (b.Integer("mask_blur") is long blur) blurX = blurY = Lenient.ClampInt(blur, "mask_blur", 0, GenerationPlan.MaxMaskBlur, 4);
        else
        {
            blurX = Lenient.ClampInt(b.Integer("mask_blur_x"), "mask_blur_x", 0, GenerationPlan.MaxMaskBlur, 4);
            blurY = Lenient.ClampInt(b.Integer("mask_blur_y"), "mask_blur_y", 0, GenerationPlan.MaxMaskBlur, 4);
        }
        return new InpaintingOptions(mask)
        {
            BlurX = blurX,
            BlurY = blurY,
            Fill = (MaskedContent)Lenient.ClampInt(b.Integer("inpainting_fill"), "inpainting_fill", 0, 3, 0),
            OnlyMasked = b.Bool("inpaint_full_res") ?? true,
            Padding = Lenient.ClampInt(b.Integer("inpaint_full_res_padding"), "inpaint_full_res_padding", 0, GenerationPlan.MaxMaskPadding, 0),
            Invert = b.Bool("inpainting_mask_invert") ?? false,
            RoundMask = round,
        };
    }

    /// <summary>A1111's initial_noise_multiplier (its setting's default, 1, when absent).</summary>
    public static double NoiseMultiplier(JsonElement b)
    {
        double value = b.Number("initial_noise_multiplier") ?? 1.0;
        if (!double.IsFinite(value) || value < 0 || value > 2)
            throw new BadRequestException("initial_noise_multiplier", $"initial_noise_multiplier is {value}; expected 0 to 2");
        return value;
    }
}
