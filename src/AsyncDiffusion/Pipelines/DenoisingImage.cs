using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// One image's way through denoising: its own seeded generator, scheduler and latents. The
/// synchronous pipeline and the asynchronous engine both drive images through this one state
/// machine (write the UNet inputs, complete the step with the UNet's output, decode), so the
/// same seed gives the same image whoever runs it and whatever it is batched with.
/// Inpainting lives here too: with a text-to-image UNet the kept region is reset after every
/// step to the init latents re-noised to the step's noise level; an inpainting UNet gets the
/// mask and the masked image's latents beside the latents in every row.
/// </summary>
public sealed class DenoisingImage
{
    private readonly RequestInputs _inputs;
    private INoiseGenerator _rng;
    private float[] _latents;
    // Masked denoising with a text-to-image UNet: the init latents and the noise they were noised with.
    private readonly float[]? _clean, _noise;
    // Inpainting UNet: the masked image's latents, sampled with this image's generator.
    private float[]? _maskedImage;
    private InpaintingConditioning? _conditioning;
    private PromptEmbeddings _prompt;
    private DenoisingPass _pass;
    private int _position, _stepsBefore;

    public GenerationPlan Plan { get; }
    public int Index { get; }
    public long Seed { get; }
    public Scheduler Scheduler { get; private set; }
    public int Channels => Plan.LatentChannels;
    public int LatentHeight => _pass.LatentHeight;
    public int LatentWidth => _pass.LatentWidth;
    public int LatentSize => _latents.Length;

    /// <summary>Channels of one UNet sample row: the latents, or latents + mask + masked-image latents.</summary>
    public int InputChannels => Plan.InputChannels;

    /// <summary>Values of one UNet sample row.</summary>
    public int InputSize => InputChannels * LatentHeight * LatentWidth;

    /// <summary>UNet rows this image needs per step: 2 with guidance (unconditional, conditional), else 1.</summary>
    public int Rows => Plan.RowsPerImage;

    /// <summary>Steps over all passes, and those done so far.</summary>
    public int StepsTotal => Plan.StepsPerImage;
    public int StepsDone => _stepsBefore + _position - _pass.StartIndex;

    /// <summary>Whether this image is in hires fix's second pass.</summary>
    public bool InSecondPass => !ReferenceEquals(_pass, Plan.FirstPass);

    /// <summary>Hires fix: the first pass is done and the latents wait for <see cref="StartSecondPass"/>.</summary>
    public bool NeedsUpscale => PassDone && Plan.Hires is not null && !InSecondPass;

    /// <summary>Every pass is done: the latents are ready to decode.</summary>
    public bool IsDenoised => PassDone && (Plan.Hires is null || InSecondPass);

    private bool PassDone => _position >= Scheduler.Timesteps.Count;
    public double Timestep => Scheduler.Timesteps[_position];
    public ReadOnlySpan<float> Latents => _latents;

    /// <summary>The infotext fields of this image's inpainting settings (none without a mask).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> InpaintingInfotext => _inputs.Inpainting?.Infotext ?? [];

    private DenoisingImage(GenerationPlan plan, int index, RequestInputs inputs, Scheduler scheduler, INoiseGenerator rng, float[] latents,
        float[]? clean, float[]? noise, float[]? maskedImage)
    {
        Plan = plan;
        _inputs = inputs;
        Index = index;
        Seed = plan.Seeds[index];
        Scheduler = scheduler;
        _rng = rng;
        _latents = latents;
        _clean = clean;
        _noise = noise;
        _maskedImage = maskedImage;
        _conditioning = inputs.Conditioning;
        _prompt = inputs.Prompt;
        _pass = plan.FirstPass;
        _position = plan.StartIndex;
    }

    /// <summary>
    /// Image <paramref name="index"/> of a planned request. Its first noise is the seed's, with
    /// A1111's variation seeds applied (<see cref="VariationNoise"/>); the generator continues
    /// from there. txt2img: that noise × the scheduler's init sigma. img2img: the init image's
    /// latents sampled with this image's generator, then noised to the start timestep with the
    /// generator's next noise (× the initial noise multiplier), in diffusers' order; masked content
    /// "latent noise"/"latent nothing" replaces the masked latents first. An inpainting UNet's
    /// masked-image latents are sampled next.
    /// </summary>
    public static DenoisingImage Start(GenerationPlan plan, int index, RequestInputs inputs)
    {
        var scheduler = plan.CreateScheduler();
        int n = plan.LatentChannels * plan.LatentHeight * plan.LatentWidth;
        var latents = new float[n];
        float[]? clean = null, noise = null;
        INoiseGenerator rng;
        if (inputs.Init is not { } init)
        {
            rng = VariationNoise.First(plan.Request.Rng, plan.Seeds[index], plan.VariationOf(index), plan.LatentChannels, plan.LatentHeight, plan.LatentWidth, latents);
            float sigma = (float)scheduler.InitNoiseSigma;
            if (sigma != 1f)
                for (int i = 0; i < latents.Length; i++) latents[i] *= sigma;
        }
        else
        {
            if (init.LatentSize != n)
                throw new ArgumentException($"The init image's latents have {init.LatentSize} values; the plan needs {n}.", nameof(inputs));
            rng = NoiseGenerators.Create(plan.Request.Rng, (ulong)plan.Seeds[index]);
            clean = init.Sample(rng);
            noise = new float[n];
            rng.NextGaussian(noise);
            float multiplier = (float)plan.Request.InitialNoiseMultiplier;
            if (multiplier != 1f)
                for (int i = 0; i < n; i++) noise[i] *= multiplier;
            if (inputs.Inpainting is { } inpainting) FillMaskedLatents(plan, index, inpainting, clean);
            scheduler.AddNoise(clean, noise, scheduler.Timesteps[plan.StartIndex], latents);
        }
        var maskedImage = inputs.Conditioning?.MaskedImage.Sample(rng);
        bool blends = inputs.Inpainting is not null && plan.InputChannels == plan.LatentChannels;
        return new DenoisingImage(plan, index, inputs, scheduler, rng, latents, blends ? clean : null, blends ? noise : null, maskedImage);
    }

    /// <summary>
    /// Hires fix, once the first pass is done: upscales the latents (<see cref="HiresUpscaling"/>)
    /// and starts the second pass as A1111 does — a fresh generator for the seed makes the seed's
    /// first noise at the new size (variation seeds included), the upscaled latents are noised
    /// with it to the pass's start timestep, and step noise continues from that generator.
    /// </summary>
    public void StartSecondPass(HiresUpscaling upscaling, CancellationToken cancellation)
    {
        if (!NeedsUpscale) throw new InvalidOperationException($"Image {Index + 1} is not waiting between hires fix's passes.");
        var hires = Plan.Hires!;
        var pass = hires.Pass;
        var clean = upscaling.Upscale(_latents, Plan, Seed, cancellation);
        var noise = new float[clean.Length];
        var rng = VariationNoise.First(Plan.Request.Rng, Seed, Plan.VariationOf(Index), Channels, pass.LatentHeight, pass.LatentWidth, noise);
        var scheduler = pass.CreateScheduler();
        var latents = new float[clean.Length];
        scheduler.AddNoise(clean, noise, scheduler.Timesteps[pass.StartIndex], latents);
        _stepsBefore = StepsDone;
        _pass = pass;
        _position = pass.StartIndex;
        Scheduler = scheduler;
        _rng = rng;
        _latents = latents;
        _prompt = _inputs.HiresPrompt ?? _inputs.Prompt;
        _conditioning = _inputs.HiresConditioning;
        _maskedImage = _conditioning?.MaskedImage.Sample(rng);
    }

    // A1111: latent noise is the seed's first noise tensor, latent nothing is zero, in the masked part.
    private static void FillMaskedLatents(GenerationPlan plan, int index, PreparedInpainting inpainting, float[] clean)
    {
        if (inpainting.Fill is not (MaskedContent.LatentNoise or MaskedContent.LatentNothing)) return;
        var replacement = new float[clean.Length];
        if (inpainting.Fill == MaskedContent.LatentNoise)
            NoiseGenerators.Create(plan.Request.Rng, (ulong)plan.Seeds[index]).NextGaussian(replacement);
        var mask = inpainting.LatentMask;
        for (int i = 0; i < clean.Length; i++)
        {
            float m = mask[i % mask.Length];
            clean[i] = clean[i] * (1 - m) + replacement[i] * m;
        }
    }

    /// <summary>
    /// Writes this step's UNet rows (each <see cref="InputSize"/> values): the scaled latents (and,
    /// for an inpainting UNet, the mask and the masked image's latents) once per row, and the
    /// matching text states.
    /// </summary>
    public void WriteInputs(Span<float> samples, Span<float> context)
    {
        int n = _latents.Length, size = InputSize;
        var row = samples[..size];
        Scheduler.ScaleModelInput(_latents, Timestep, row[..n]);
        if (_maskedImage is not null)
        {
            var mask = _conditioning!.Mask;
            mask.CopyTo(row.Slice(n, mask.Length));
            _maskedImage.CopyTo(row.Slice(n + mask.Length, _maskedImage.Length));
        }
        for (int r = 1; r < Rows; r++) row.CopyTo(samples.Slice(r * size, size));
        int states = _prompt.Conditional.Length;
        if (_prompt.Unconditional is { } uncond)
        {
            uncond.CopyTo(context[..states]);
            _prompt.Conditional.CopyTo(context.Slice(states, states));
        }
        else _prompt.Conditional.CopyTo(context[..states]);
    }

    /// <summary>Combines the rows (classifier-free guidance), steps the scheduler and, inpainting, restores the kept region.</summary>
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
        if (_clean is not null) KeepUnmasked();
    }

    // diffusers' masked denoising: the kept region is the init latents noised (with this image's
    // noise) to the level the latents are now at, the next timestep; after the last step, the clean latents.
    private void KeepUnmasked()
    {
        ReadOnlySpan<float> kept = _clean;
        if (!PassDone)
        {
            var noised = new float[_latents.Length];
            Scheduler.AddNoise(_clean, _noise, Timestep, noised);
            kept = noised;
        }
        var mask = _inputs.Inpainting!.LatentMask;
        for (int i = 0; i < _latents.Length; i++)
        {
            float m = mask[i % mask.Length];
            _latents[i] = kept[i] * (1 - m) + _latents[i] * m;
        }
    }

    /// <summary>Decodes the finished latents; inpainting, the original's unmasked pixels are put back (A1111's overlay).</summary>
    public RgbImage Decode(ILatentDecoder decoder, CancellationToken cancellation = default)
    {
        var decoded = decoder.DecodeImage(_latents, Channels, LatentHeight, LatentWidth, cancellation);
        return _inputs.Inpainting?.Compose(decoded) ?? decoded;
    }
}
