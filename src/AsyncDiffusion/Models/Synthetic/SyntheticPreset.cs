using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>A real Stable Diffusion architecture to write with random weights, and the scheduler config it ships with.</summary>
public sealed record SyntheticPreset(
    string Name,
    string Description,
    ClipTextConfig TextEncoder,
    UNetConfig UNet,
    VaeConfig Vae,
    string SchedulerConfigJson,
    string? PadToken = null)
{
    /// <summary>Default image size: the UNet's sample size times the VAE factor.</summary>
    public int ImageSize => UNet.SampleSize * Vae.ScaleFactor;

    // SD 1.5's scheduler/scheduler_config.json as published.
    internal const string Sd15Scheduler = """
        {
          "_class_name": "PNDMScheduler",
          "_diffusers_version": "0.6.0",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "num_train_timesteps": 1000,
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "trained_betas": null,
          "clip_sample": false
        }
        """;

    private const string Sd21Scheduler = """
        {
          "_class_name": "DDIMScheduler",
          "_diffusers_version": "0.8.0",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "clip_sample": false,
          "num_train_timesteps": 1000,
          "prediction_type": "v_prediction",
          "set_alpha_to_one": false,
          "skip_prk_steps": true,
          "steps_offset": 1,
          "trained_betas": null
        }
        """;

    private const string TurboScheduler = """
        {
          "_class_name": "EulerDiscreteScheduler",
          "_diffusers_version": "0.24.0",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "interpolation_type": "linear",
          "num_train_timesteps": 1000,
          "prediction_type": "epsilon",
          "steps_offset": 1,
          "timestep_spacing": "trailing",
          "trained_betas": null,
          "use_karras_sigmas": false
        }
        """;

    /// <summary>A few MB, CLIP's full 49,408-token vocabulary, 64×64 images: for tests.</summary>
    public static SyntheticPreset Tiny { get; } = new("tiny", "tiny SD 1.x-shaped model for tests (64x64 images)",
        new ClipTextConfig(49408, 32, 2, 4, 64, 77, true),
        new UNetConfig([32, 64], [false, true], 1, 32, [2, 4], false, 8, 8),
        new VaeConfig([16, 16, 32, 32], 1, 4, 8, 0.18215),
        Sd15Scheduler);

    /// <summary>Exactly Stable Diffusion 1.5's configuration (~860 M UNet parameters): for benchmarks.</summary>
    public static SyntheticPreset Sd15 { get; } = new("sd15", "Stable Diffusion 1.5 architecture (512x512)",
        ClipTextConfig.Sd15, UNetConfig.Sd15, VaeConfig.Sd, Sd15Scheduler);

    /// <summary>Stable Diffusion 2.1 (768 px, v-prediction, OpenCLIP-H text encoder, pad token "!").</summary>
    public static SyntheticPreset Sd21 { get; } = new("sd21", "Stable Diffusion 2.1 architecture, v-prediction (768x768)",
        ClipTextConfig.Sd2, UNetConfig.Sd2, VaeConfig.Sd, Sd21Scheduler, "!");

    /// <summary>SD-Turbo: SD 2.1 architecture at 512 px with a trailing-spacing Euler scheduler (1–4 steps, no CFG).</summary>
    public static SyntheticPreset Turbo { get; } = new("turbo", "SD-Turbo style: SD 2.1 architecture at 512x512, trailing Euler",
        ClipTextConfig.Sd2, UNetConfig.Sd2 with { SampleSize = 64 }, VaeConfig.Sd, TurboScheduler, "!");

    /// <summary>The tiny model with an inpainting UNet: 9 input channels (latents, mask, masked-image latents), 4 out.</summary>
    public static SyntheticPreset TinyInpaint { get; } = Tiny with
    {
        Name = "tiny-inpaint",
        Description = "tiny SD 1.x-shaped inpainting model for tests (64x64 images, 9-channel UNet)",
        UNet = Tiny.UNet with { InChannels = 9 },
    };

    /// <summary>Stable Diffusion 1.5 inpainting: SD 1.5 with conv_in taking 9 channels (859,535,364 UNet parameters).</summary>
    public static SyntheticPreset Sd15Inpaint { get; } = Sd15 with
    {
        Name = "sd15-inpaint",
        Description = "Stable Diffusion 1.5 inpainting architecture (512x512, 9-channel UNet)",
        UNet = UNetConfig.Sd15 with { InChannels = 9 },
    };

    /// <summary>Whether the UNet is an inpainting UNet (latents, mask and masked-image latents in).</summary>
    public bool IsInpainting => UNet.InChannels == 2 * UNet.OutChannels + 1;

    public static IReadOnlyList<SyntheticPreset> All { get; } = [Tiny, Sd15, Sd21, Turbo, TinyInpaint, Sd15Inpaint];

    public static SyntheticPreset Parse(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new AsyncDiffusionException($"Unknown preset '{name}'; expected one of: {string.Join(", ", All.Select(p => $"{p.Name} ({p.Description})"))}.");
}
