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
public sealed class DenoisingImage
{
    private readonly PromptEmbeddings _prompt;
    private readonly INoiseGenerator _rng;
    private readonly float[] _latents;
    private int _position;

    public GenerationPlan Plan { get; }
    public int Index { get; }
    public long Seed { get; }
    public Scheduler Scheduler { get; }
    public int Channels => Plan.LatentChannels;
    public int LatentHeight => Plan.LatentHeight;
    public int LatentWidth => Plan.LatentWidth;
    public int LatentSize => _latents.Length;

    /// <summary>UNet rows this image needs per step: 2 with guidance (unconditional, conditional), else 1.</summary>
    public int Rows => Plan.RowsPerImage;

    public int StepsTotal => Plan.StepsPerImage;
    public int StepsDone => _position - Plan.StartIndex;
    public bool IsDenoised => _position >= Scheduler.Timesteps.Count;
    public double Timestep => Scheduler.Timesteps[_position];
    public ReadOnlySpan<float> Latents => _latents;

    private DenoisingImage(GenerationPlan plan, int index, PromptEmbeddings prompt, Scheduler scheduler, INoiseGenerator rng, float[] latents)
    {
        Plan = plan;
        _prompt = prompt;
        Index = index;
        Seed = plan.Seeds[index];
        Scheduler = scheduler;
        _rng = rng;
        _latents = latents;
        _position = plan.StartIndex;
    }

    /// <summary>
    /// Image <paramref name="index"/> of a planned request. txt2img: the seed's noise × the
    /// scheduler's init sigma. img2img: the init image's latents sampled with this image's
    /// generator, then noised to the start timestep with the same generator, in diffusers' order.
    /// </summary>
    public static DenoisingImage Start(GenerationPlan plan, int index, PromptEmbeddings prompt, InitImageLatents? init)
    {
        var scheduler = plan.CreateScheduler();
        var rng = NoiseGenerators.Create(plan.Request.Rng, (ulong)plan.Seeds[index]);
        int n = plan.LatentChannels * plan.LatentHeight * plan.LatentWidth;
        var latents = new float[n];
        if (init is null)
        {
            rng.NextGaussian(latents);
            float sigma = (float)scheduler.InitNoiseSigma;
            if (sigma != 1f)
                for (int i = 0; i < latents.Length; i++) latents[i] *= sigma;
        }
        else
        {
            if (init.LatentSize != n)
                throw new ArgumentException($"The init image's latents have {init.LatentSize} values; the plan needs {n}.", nameof(init));
            var clean = init.Sample(rng);
            var noise = new float[n];
            rng.NextGaussian(noise);
            scheduler.AddNoise(clean, noise, scheduler.Timesteps[plan.StartIndex], latents);
        }
        return new DenoisingImage(plan, index, prompt, scheduler, rng, latents);
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
            float g = (float)Plan.Request.GuidanceScale;
            var uncond = output[..n];
            var cond = output.Slice(n, n);
            for (int i = 0; i < n; i++) guided[i] = uncond[i] + g * (cond[i] - uncond[i]);
        }
        else output[..n].CopyTo(guided);

        foreach (var v in guided)
            if (!float.IsFinite(v))
                throw new GenerationFailedException($"The UNet produced NaN or infinite values at step {StepsDone + 1} of image {Index + 1}; the model (or its fp16 precision) is numerically unstable here.");
        Scheduler.Step(guided, Timestep, _latents, _rng.NextGaussian);
        _position++;
    }
}
