using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Jobs;

/// <summary>The native jobs API's inpainting fields (the CLI's flags): mask, mask_blur, invert_mask, inpaint_full_res, inpaint_padding, masked_content.</summary>
internal static class JobsInpainting
{
    public static InpaintingOptions? Read(JsonElement b, ServerOptions options)
    {
        if (b.Field("mask") is not { } upload) return null;
        var mask = InpaintMasks.FromImage(UploadedImages.RgbaFromBase64(upload, "mask", options.MaxImagePixels));
        int blur = Lenient.ClampInt(b.Integer("mask_blur"), "mask_blur", 0, GenerationPlan.MaxMaskBlur, 4);
        return new InpaintingOptions(mask)
        {
            BlurX = blur,
            BlurY = blur,
            Invert = b.Bool("invert_mask") ?? false,
            OnlyMasked = b.Bool("inpaint_full_res") ?? false,
            Padding = Lenient.ClampInt(b.Integer("inpaint_padding"), "inpaint_padding", 0, GenerationPlan.MaxMaskPadding, 32),
            Fill = InpaintingOptions.ParseMaskedContent(b.String("masked_content") ?? "original") ?? throw new BadRequestException("masked_content",
                $"masked_content '{b.String("masked_content")}' is not fill, original, latent_noise or latent_nothing"),
        };
    }
}
