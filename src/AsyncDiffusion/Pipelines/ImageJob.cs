using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// One image's way through denoising: its own seeded generator, scheduler and latents. The
/// synchronous pipeline and the asynchronous engine both drive images through this one state
/// machine (write the UNet inputs, complete the step with the UNet's output), so the same seed
/// gives the same image whoever runs it and whatever it is batched with.
/// </summary>
public sealed class ImageJob
{
    private readonly GenerationPlan _plan;
    private readonly PromptEmbeddings _prompt;
    private readonly INoiseGenerator _rng;
    private readonly float[] _latents;
    private int _position;

    public int Index { get; }
    public long Seed { get; }
    public Scheduler Scheduler { get; }
    public int StartIndex { get; }
    public int Channels { get; }
    public int LatentHeight { get; }
    public int LatentWidth { get; }
    public int LatentSize => _latents.Length;

    /// <summary>UNet rows this image needs per step: 2 with guidance (unconditional, conditional), else 1.</summary>
    public int Rows => _prompt.Unconditional is null ? 1 : 2;

    public int StepsTotal => Scheduler.Timesteps.Count - StartIndex;
    public int StepsDone => _position - StartIndex;
    public bool IsDenoised => _position >= Scheduler.Timesteps.Count;
    public double Timestep => Scheduler.Timesteps[_position];
    public ReadOnlySpan<float> Latents => _latents;

    private ImageJob(GenerationPlan plan, int index, PromptEmbeddings prompt, Scheduler scheduler, INoiseGenerator rng, float[] latents, int start, int channels, int h, int w)
    {
        _plan = plan;
        _prompt = prompt;
        Index = index;
        Seed = plan.Seeds[index];
        Scheduler = scheduler;
        _rng = rng;
        _latents = latents;
        StartIndex = start;
        _position = start;
        Channels = channels;
        LatentHeight = h;
        LatentWidth = w;
    }

    /// <summary>txt2img: initial latents are the seed's noise × the scheduler's init sigma.</summary>
    public static ImageJob TextToImage(GenerationPlan plan, int index, PromptEmbeddings prompt, ModelFolder model)
    {
        var scheduler = plan.CreateScheduler(model);
        scheduler.SetTimesteps(plan.Request.Steps);
        var rng = NoiseGenerators.Create(plan.Request.Rng, (ulong)plan.Seeds[index]);
        int c = model.LatentChannels, h = plan.LatentHeight(model), w = plan.LatentWidth(model);
        var latents = new float[c * h * w];
        rng.NextGaussian(latents);
        float sigma = (float)scheduler.InitNoiseSigma;
        if (sigma != 1f)
            for (int i = 0; i < latents.Length; i++) latents[i] *= sigma;
        return new ImageJob(plan, index, prompt, scheduler, rng, latents, 0, c, h, w);
    }

    /// <summary>
    /// img2img from the VAE encoder's output for the init image: sample the latent distribution
    /// with this image's generator (or take the sampled latent of old exports), scale it, and
    /// noise it to the start timestep with the same generator, in diffusers' order.
    /// </summary>
    public static ImageJob ImageToImage(GenerationPlan plan, int index, PromptEmbeddings prompt, ModelFolder model, InitImageLatents encoded)
    {
        var scheduler = plan.CreateScheduler(model);
        int start = scheduler.SetTimestepsForStrength(plan.Request.Steps, plan.Request.Strength);
        var rng = NoiseGenerators.Create(plan.Request.Rng, (ulong)plan.Seeds[index]);
        int c = model.LatentChannels, h = plan.LatentHeight(model), w = plan.LatentWidth(model);
        int n = c * h * w;
        var clean = new float[n];
        if (encoded.Output == VaeEncoderOutput.LatentParameters)
        {
            var eps = new float[n];
            rng.NextGaussian(eps);
            for (int i = 0; i < n; i++)
            {
                float logvar = Math.Clamp(encoded.Values[n + i], -30f, 20f);
                clean[i] = encoded.Values[i] + MathF.Exp(0.5f * logvar) * eps[i];
            }
        }
        else Array.Copy(encoded.Values, clean, n);
        float scaling = (float)model.ScalingFactor;
        for (int i = 0; i < n; i++) clean[i] *= scaling;

        var noise = new float[n];
        rng.NextGaussian(noise);
        var latents = new float[n];
        scheduler.AddNoise(clean, noise, scheduler.Timesteps[start], latents);
        return new ImageJob(plan, index, prompt, scheduler, rng, latents, start, c, h, w);
    }

    /// <summary>Writes this step's UNet rows: the scaled latents once per row, and the matching text states.</summary>
    public void WriteInputs(Span<float> samples, Span<float> context)
    {
        int n = _latents.Length;
        Scheduler.ScaleModelInput(_latents, Timestep, samples[..n]);
        for (int r = 1; r < Rows; r++) samples[..n].CopyTo(samples.Slice(r * n, n));
        int size = _prompt.Conditional.Length;
        if (_prompt.Unconditional is { } uncond)
        {
            uncond.CopyTo(context[..size]);
            _prompt.Conditional.CopyTo(context.Slice(size, size));
        }
        else _prompt.Conditional.CopyTo(context[..size]);
    }

    /// <summary>Combines the rows (classifier-free guidance) and steps the scheduler.</summary>
    public void CompleteStep(ReadOnlySpan<float> output)
    {
        int n = _latents.Length;
        Span<float> guided = new float[n];
        if (Rows == 2)
        {
            float g = (float)_plan.Request.GuidanceScale;
            var uncond = output[..n];
            var cond = output.Slice(n, n);
            for (int i = 0; i < n; i++) guided[i] = uncond[i] + g * (cond[i] - uncond[i]);
        }
        else output[..n].CopyTo(guided);

        foreach (var v in guided)
            if (!float.IsFinite(v))
                throw new AsyncDiffusionException($"The UNet produced NaN or infinite values at step {StepsDone + 1} of image {Index + 1}; the model (or its fp16 precision) is numerically unstable here.");
        Scheduler.Step(guided, Timestep, _latents, _rng.NextGaussian);
        _position++;
    }
}

/// <summary>The VAE encoder's output for an init image: mean ‖ log-variance, or a sampled latent.</summary>
public sealed record InitImageLatents(float[] Values, VaeEncoderOutput Output);
