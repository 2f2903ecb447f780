using AsyncDiffusion.Models;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// A request checked against a model and the limits, with everything derived from it fixed:
/// size, seeds, scheduler name. Building one is the only validation a request gets; every
/// stage after it can trust its values.
/// </summary>
public sealed record GenerationPlan(GenerationRequest Request, int Width, int Height, long[] Seeds, string SchedulerName, string ModelName)
{
    /// <summary>UNet calls per image: the scheduler's timesteps from the img2img start (PNDM makes one more than steps).</summary>
    public int StepsPerImage { get; init; }

    public int LatentWidth(ModelFolder m) => Width / m.VaeScaleFactor;
    public int LatentHeight(ModelFolder m) => Height / m.VaeScaleFactor;

    /// <summary>A fresh scheduler for one image (schedulers hold per-run state).</summary>
    public Scheduler CreateScheduler(ModelFolder model)
    {
        var scheduler = Request.Scheduler is null ? SchedulerRegistry.CreateDefault(model.SchedulerConfig) : SchedulerRegistry.Create(Request.Scheduler, model.SchedulerConfig);
        if (scheduler is DdimScheduler ddim) ddim.Eta = Request.Eta;
        return scheduler;
    }

    public static GenerationPlan Create(GenerationRequest r, ModelFolder model, GenerationLimits? limits = null)
    {
        limits ??= GenerationLimits.Default;
        if (r.Prompt is null) throw new AsyncDiffusionException("prompt is missing; expected text.");
        if (r.Prompt.Length > limits.MaxPromptCharacters || (r.NegativePrompt?.Length ?? 0) > limits.MaxPromptCharacters)
            throw new AsyncDiffusionException($"prompt is longer than {limits.MaxPromptCharacters:N0} characters.");
        if (r.Steps < 1 || r.Steps > limits.MaxSteps)
            throw new AsyncDiffusionException($"steps is {r.Steps}; expected 1 to {limits.MaxSteps}.");
        if (!double.IsFinite(r.GuidanceScale) || r.GuidanceScale < 0 || r.GuidanceScale > limits.MaxGuidanceScale)
            throw new AsyncDiffusionException($"guidance scale (cfg) is {r.GuidanceScale}; expected 0 to {limits.MaxGuidanceScale}.");
        if (r.Count < 1 || r.Count > limits.MaxCount)
            throw new AsyncDiffusionException($"image count is {r.Count}; expected 1 to {limits.MaxCount}.");
        if (!double.IsFinite(r.Eta) || r.Eta < 0 || r.Eta > 1)
            throw new AsyncDiffusionException($"eta is {r.Eta}; expected 0 to 1.");

        int width = r.Width ?? model.NativeSize, height = r.Height ?? model.NativeSize;
        CheckSize("width", width, limits.MaxWidth, model);
        CheckSize("height", height, limits.MaxHeight, model);

        if (r.IsImageToImage)
        {
            if (model.VaeEncoder is null)
                throw new AsyncDiffusionException($"Model folder '{model.Path}' has no vae_encoder/, which img2img needs; use txt2img or a model exported with its VAE encoder.");
            if (!(r.Strength > 0 && r.Strength <= 1))
                throw new AsyncDiffusionException($"strength is {r.Strength}; expected a value in (0, 1].");
        }

        if (r.Seed < -1) throw new AsyncDiffusionException($"seed is {r.Seed}; expected −1 (random) or a seed of 0 or more.");
        long first = r.Seed == -1 ? Random.Shared.NextInt64(0, 1L << 32) : r.Seed;
        var seeds = Enumerable.Range(0, r.Count).Select(i => first + i).ToArray();
        if (r.Rng == Randomness.NoiseGeneratorKind.Numpy && seeds[^1] > uint.MaxValue)
            throw new AsyncDiffusionException($"seed {seeds[^1]} is too large for the numpy generator; numpy accepts 0 to {uint.MaxValue}.");

        var plan = new GenerationPlan(r with { NegativePrompt = r.NegativePrompt ?? "" }, width, height, seeds, "", model.Name);
        // Build the scheduler once now, so an unknown name or an impossible steps/strength fails before any work.
        var scheduler = plan.CreateScheduler(model);
        int start = 0;
        if (r.IsImageToImage) start = scheduler.SetTimestepsForStrength(r.Steps, r.Strength);
        else scheduler.SetTimesteps(r.Steps);
        string name = r.Scheduler is not null && SchedulerRegistry.TryResolve(r.Scheduler, out var entry) ? entry.Name : DisplayName(scheduler.ClassName);
        return plan with { SchedulerName = name, StepsPerImage = scheduler.Timesteps.Count - start };
    }

    private static void CheckSize(string what, int value, int max, ModelFolder model)
    {
        int multiple = model.SizeMultiple;
        if (value < multiple || value > max || value % 8 != 0)
            throw new AsyncDiffusionException($"{what} is {value}; expected a multiple of 8 from {multiple} to {max}.");
        if (value % multiple != 0)
            throw new AsyncDiffusionException($"{what} is {value}; this model needs multiples of {multiple} (VAE factor {model.VaeScaleFactor} × UNet down-sampling {model.UNet.LatentMultiple}), e.g. {value / multiple * multiple} or {(value / multiple + 1) * multiple}.");
    }

    private static string DisplayName(string className) =>
        SchedulerRegistry.Entries.FirstOrDefault(e => e.ClassName == className && e.Overrides.Count == 0)?.Name ?? className;
}
