using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Doubles;

/// <summary>
/// The denoising loop written out by hand with the library's parts (tokenizer, text encoder, VAE
/// encoder, scheduler, generator) and an <see cref="AnalyticUNet"/> evaluated on the host, for
/// comparing the pipeline's latents step by step. Covers img2img starts, masked denoising with a
/// text-to-image UNet, the extra channels of an inpainting UNet, given first noise (variation
/// seeds) and hires fix's second pass.
/// </summary>
public sealed class HandReplay(ModelFolder model, AnalyticUNet unet)
{
    /// <summary>What the replay needs beyond the request.</summary>
    public sealed record Inputs
    {
        /// <summary>The generation-size image the VAE encodes (img2img / inpainting); null for txt2img.</summary>
        public RgbImage? Source { get; init; }
        /// <summary>Text-to-image UNet inpainting: the latent mask [h·w], 1 = repaint.</summary>
        public float[]? BlendMask { get; init; }
        public MaskedContent Fill { get; init; } = MaskedContent.Original;
        /// <summary>Inpainting UNet: the mask channel [h·w] and the masked image [3, H, W] in [-1, 1].</summary>
        public float[]? ConditioningMask { get; init; }
        public float[]? MaskedImage { get; init; }
        /// <summary>txt2img: the first noise to start from instead of the seed's (variation seeds); the generator is still advanced past one draw.</summary>
        public float[]? Noise { get; init; }
    }

    /// <summary>The latents after every step, and the clean init latents and noise they started from.</summary>
    public sealed record Trajectory(List<float[]> Steps, float[]? Clean, float[]? Noise, Scheduler Scheduler, int Start);

    public Trajectory Run(GenerationRequest r, long seed, Inputs inputs)
    {
        var cond = model.TextEncoder.Encode(model.Tokenizer.Encode(r.Prompt).InputIds, 1);
        var uncond = model.TextEncoder.Encode(model.Tokenizer.Encode(r.NegativePrompt).InputIds, 1);
        var scheduler = SchedulerRegistry.Create(r.Scheduler!, model.SchedulerConfig);
        var rng = NoiseGenerators.Create(r.Rng, (ulong)seed);
        int width = r.Width ?? 64, height = r.Height ?? 64, plane = width / 8 * (height / 8), n = 4 * plane;
        var latents = new float[n];
        float[]? clean = null, noise = null;
        int start = 0;
        if (inputs.Source is { } source)
        {
            start = scheduler.SetTimestepsForStrength(r.Steps, r.Strength);
            var tensor = new float[3 * width * height];
            LatentImageConversion.ToTensor(source, tensor);
            clean = SampleLatents(tensor, width, height, rng);
            noise = new float[n];
            rng.NextGaussian(noise);
            for (int i = 0; i < n; i++) noise[i] *= (float)r.InitialNoiseMultiplier;
            if (inputs.Fill is MaskedContent.LatentNoise or MaskedContent.LatentNothing)
            {
                var seedNoise = new float[n];
                if (inputs.Fill == MaskedContent.LatentNoise) NoiseGenerators.Create(r.Rng, (ulong)seed).NextGaussian(seedNoise);
                var m = inputs.BlendMask!;
                for (int i = 0; i < n; i++) clean[i] = clean[i] * (1 - m[i % plane]) + seedNoise[i] * m[i % plane];
            }
            scheduler.AddNoise(clean, noise, scheduler.Timesteps[start], latents);
        }
        else
        {
            scheduler.SetTimesteps(r.Steps);
            rng.NextGaussian(latents);
            inputs.Noise?.CopyTo(latents, 0);
            for (int i = 0; i < n; i++) latents[i] *= (float)scheduler.InitNoiseSigma;
        }
        float[]? maskedLatents = inputs.MaskedImage is { } masked ? SampleLatents(masked, width, height, rng) : null;
        var steps = Denoise(r.GuidanceScale, cond, uncond, scheduler, start, latents, rng, inputs, clean, noise, maskedLatents, plane);
        return new Trajectory(steps, clean, noise, scheduler, start);
    }

    /// <summary>
    /// Hires fix's second pass by hand: <paramref name="latents"/> (already noised to the start)
    /// denoised from <paramref name="start"/> with the given prompts, step noise from <paramref name="rng"/>.
    /// </summary>
    public List<float[]> Continue(string prompt, string negative, double cfg, Scheduler scheduler, int start, float[] latents, INoiseGenerator rng)
    {
        var cond = model.TextEncoder.Encode(model.Tokenizer.Encode(prompt).InputIds, 1);
        var uncond = model.TextEncoder.Encode(model.Tokenizer.Encode(negative).InputIds, 1);
        return Denoise(cfg, cond, uncond, scheduler, start, latents, rng, new Inputs(), null, null, null, latents.Length / 4);
    }

    private List<float[]> Denoise(double cfg, float[] cond, float[] uncond, Scheduler scheduler, int start, float[] latents, INoiseGenerator rng, Inputs inputs,
        float[]? clean, float[]? noise, float[]? maskedLatents, int plane)
    {
        int n = latents.Length;
        var steps = new List<float[]>();
        int rowSize = maskedLatents is null ? n : 2 * n + plane;
        var row = new float[rowSize];
        var outCond = new float[n];
        var outUncond = new float[n];
        var guided = new float[n];
        for (int s = start; s < scheduler.Timesteps.Count; s++)
        {
            double t = scheduler.Timesteps[s];
            scheduler.ScaleModelInput(latents, t, row.AsSpan(0, n));
            if (maskedLatents is not null)
            {
                inputs.ConditioningMask!.CopyTo(row, n);
                maskedLatents.CopyTo(row, n + plane);
            }
            unet.Evaluate(row, t, cond, outCond);
            if (cfg > 1)
            {
                unet.Evaluate(row, t, uncond, outUncond);
                for (int k = 0; k < n; k++) guided[k] = outUncond[k] + (float)cfg * (outCond[k] - outUncond[k]);
            }
            else outCond.CopyTo(guided, 0);
            scheduler.Step(guided, t, latents, rng.NextGaussian);
            if (inputs.BlendMask is { } mask && maskedLatents is null)
            {
                var kept = clean!.ToArray();
                if (s + 1 < scheduler.Timesteps.Count) scheduler.AddNoise(clean, noise, scheduler.Timesteps[s + 1], kept);
                for (int i = 0; i < n; i++) latents[i] = kept[i] * (1 - mask[i % plane]) + latents[i] * mask[i % plane];
            }
            steps.Add(latents.ToArray());
        }
        return steps;
    }

    // diffusers' latent_dist.sample(generator) × scaling factor, for latent_parameters encoders.
    private float[] SampleLatents(float[] tensor, int width, int height, INoiseGenerator rng)
    {
        var (moments, _) = model.VaeEncoder!.Encode(tensor, [1, 3, height, width]);
        int n = moments.Length / 2;
        var eps = new float[n];
        rng.NextGaussian(eps);
        var result = new float[n];
        for (int i = 0; i < n; i++)
            result[i] = (moments[i] + MathF.Exp(0.5f * Math.Clamp(moments[n + i], -30f, 20f)) * eps[i]) * (float)model.ScalingFactor;
        return result;
    }
}
