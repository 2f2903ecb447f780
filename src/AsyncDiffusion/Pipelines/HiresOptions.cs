namespace AsyncDiffusion.Pipelines;

/// <summary>
/// AUTOMATIC1111's hires fix as a txt2img request asks for it: after the first pass at the
/// request's size, each image is upscaled and denoised again at the larger size as img2img, from
/// the same seed. Immutable; <see cref="GenerationPlan.Create"/> checks it.
/// </summary>
public sealed record HiresOptions
{
    /// <summary>Factor on the first pass's size (A1111's <c>hr_scale</c>), used when neither resize side is set.</summary>
    public double Scale { get; init; } = 2.0;

    /// <summary>Target size (<c>hr_resize_x</c>/<c>hr_resize_y</c>); 0 on one side follows the other keeping the aspect ratio; both 0: <see cref="Scale"/>.</summary>
    public int ResizeWidth { get; init; }
    public int ResizeHeight { get; init; }

    /// <summary>An upscaler of <see cref="HiresUpscaler.All"/> by name; null: A1111's default, "Latent".</summary>
    public string? Upscaler { get; init; }

    /// <summary>Steps the second pass runs (<c>hr_second_pass_steps</c>); 0: the request's steps.</summary>
    public int Steps { get; init; }

    /// <summary>How much the second pass changes the upscaled image (<c>denoising_strength</c>), in (0, 1].</summary>
    public double DenoisingStrength { get; init; } = 0.75;

    /// <summary>The second pass's scheduler (<c>hr_sampler_name</c> with <c>hr_scheduler</c>); null: the first pass's.</summary>
    public string? Scheduler { get; init; }

    /// <summary>The second pass's prompt and negative prompt (<c>hr_prompt</c>, <c>hr_negative_prompt</c>); null or empty: the request's.</summary>
    public string? Prompt { get; init; }
    public string? NegativePrompt { get; init; }
}
