using System.Text.Json;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>
/// What an A1111 request asked for that AsyncDiffusion does not do: each entry names the field
/// (or setting) and why. The response's <c>info</c> carries the list as <c>not_applied</c>, so
/// a client can tell an image made without, say, face restoration from one made with it.
/// Fields at their A1111 defaults are not listed.
/// </summary>
internal static class SdapiNotApplied
{
    /// <summary>The request's unapplied fields (<see cref="AddModelLimits"/> adds, once the job is planned, what the model ignores).</summary>
    public static List<string> For(JsonElement body, SdapiSettings settings, string? sampler, bool img2img)
    {
        var list = new List<string>();
        void Unless(bool applied, string entry)
        {
            if (!applied) list.Add(entry);
        }

        Unless(body.Bool("restore_faces") is not true, "restore_faces: face restoration is not available");
        if (body.String("script_name") is { Length: > 0 } script) list.Add($"script_name '{script}': scripts are not available");
        if (body.Field("alwayson_scripts") is { ValueKind: JsonValueKind.Object } always && always.EnumerateObject().Any())
            list.Add($"alwayson_scripts ({string.Join(", ", always.EnumerateObject().Select(p => p.Name))}): scripts are not available");
        if (body.Field("styles") is { ValueKind: JsonValueKind.Array } styles && styles.GetArrayLength() > 0)
            list.Add("styles: prompt styles are not available (/sdapi/v1/prompt-styles is empty)");
        if (body.String("refiner_checkpoint") is { Length: > 0 } refiner && refiner != "None") list.Add($"refiner_checkpoint '{refiner}': refiners are not available");

        // k-diffusion's sampler parameters; the samplers here are diffusers'.
        Unless(body.Number("s_churn") is null or 0, "s_churn: k-diffusion sampler parameters are not available");
        Unless(body.Number("s_tmin") is null or 0, "s_tmin: k-diffusion sampler parameters are not available");
        Unless(body.Number("s_tmax") is null or 0 or double.PositiveInfinity, "s_tmax: k-diffusion sampler parameters are not available");
        Unless(body.Number("s_noise") is null or 1, "s_noise: k-diffusion sampler parameters are not available");
        if (sampler is not null && TakesAncestralEta(sampler))
        {
            double eta = body.Number("eta") ?? settings.EtaAncestral;
            Unless(eta == 1, $"eta {eta}: {sampler} draws its noise as diffusers does (eta 1)");
        }
        Unless(settings.EtaNoiseSeedDelta == 0, "eta_noise_seed_delta: the sampler's noise comes from the image's own generator");
        Unless(settings.Vae is "Automatic" or "None" or "", $"sd_vae '{settings.Vae}': the model's own VAE is used (a checkpoint's VAE is chosen with serve --vae)");
        foreach (var key in settings.UnusedOverrides) list.Add($"override_settings.{key}: not a setting AsyncDiffusion uses");

        if (img2img)
        {
            Unless(body.Integer("resize_mode") is null or 1, "resize_mode: init images are always cropped and resized (mode 1)");
            Unless(body.Number("inpainting_mask_weight") is null or 1, "inpainting_mask_weight: the conditioning mask is always the full mask");
            Unless(body.Field("latent_mask") is null, "latent_mask: the mask is used for the latents too");
        }
        return list;
    }

    /// <summary>What the planned job could not apply with this model.</summary>
    public static void AddModelLimits(List<string> list, GenerationPlan plan)
    {
        if (plan.Request.ClipSkip > 1 && plan.ClipSkip == 1)
            list.Add($"{SdapiOptions.ClipSkipKey} {plan.Request.ClipSkip}: SD 2.x text encoders ignore clip skip (as in A1111)");
    }

    // A1111 passes eta to its ancestral and SDE samplers (Euler a, DPM2 a, DPM++ 2S a, DPM++ SDE, DPM++ 2M/3M SDE).
    private static bool TakesAncestralEta(string sampler) => sampler.Split(' ').Any(word => word is "a" or "SDE");
}
