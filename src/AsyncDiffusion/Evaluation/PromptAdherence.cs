using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Evaluation;

/// <summary>How to run a prompt-adherence evaluation: held-out prompts × seeds, with the sampler settings.</summary>
public sealed record AdherenceOptions
{
    public int Prompts { get; init; } = 24;
    public int Seeds { get; init; } = 2;
    public long FirstSeed { get; init; } = 1;
    /// <summary>Null: the model's own (<see cref="Models.ModelFolder.RecommendedGuidanceScale"/>), else 7.5.</summary>
    public double? GuidanceScale { get; init; }
    public int Steps { get; init; } = 20;
    public string? Scheduler { get; init; }
}

/// <summary>One generated image, the scene it was asked for, and the judge's verdict.</summary>
public sealed record AdherenceSample(ShapeScene Scene, long Seed, RgbImage Image, ShapeVerdict Verdict);

/// <summary>Scores over all samples: the fraction with the right background colour, main-object colour and shape (and position, over placed prompts).</summary>
public sealed record AdherenceReport(AdherenceOptions Options, string Scheduler, double GuidanceScale, IReadOnlyList<AdherenceSample> Samples)
{
    public double Background => Rate(s => s.Verdict.BackgroundRight);
    public double ObjectColour => Rate(s => s.Verdict.ObjectColourRight);
    public double Shape => Rate(s => s.Verdict.ShapeRight);

    /// <summary>Over samples whose prompt names a position; null when none does.</summary>
    public double? Position
    {
        get
        {
            var placed = Samples.Where(s => s.Verdict.PositionRight is not null).ToList();
            return placed.Count == 0 ? null : placed.Count(s => s.Verdict.PositionRight == true) / (double)placed.Count;
        }
    }

    private double Rate(Func<AdherenceSample, bool> right) => Samples.Count(right) / (double)Samples.Count;
}

/// <summary>
/// Runs held-out prompts of the shapes world (<see cref="ShapeWorld.EvaluationScenes"/>) through
/// a pipeline with fixed seeds and scores each image with <see cref="ShapeJudge"/>.
/// </summary>
public static class PromptAdherence
{
    public static AdherenceReport Evaluate(StableDiffusionPipeline pipeline, AdherenceOptions options, Action<AdherenceSample>? onSample = null,
        CancellationToken cancellation = default)
    {
        if (options.Seeds < 1) throw new AsyncDiffusionException($"The number of seeds is {options.Seeds}; expected at least 1.");
        var samples = new List<AdherenceSample>();
        string scheduler = "";
        double guidance = options.GuidanceScale ?? pipeline.Model.RecommendedGuidanceScale ?? 7.5;
        foreach (var scene in ShapeWorld.EvaluationScenes(options.Prompts))
        {
            var request = new GenerationRequest
            {
                Prompt = scene.Caption,
                Seed = options.FirstSeed,
                Count = options.Seeds,
                GuidanceScale = guidance,
                Steps = options.Steps,
                Scheduler = options.Scheduler,
            };
            var result = pipeline.Generate(request, null, cancellation);
            scheduler = result.Scheduler;
            foreach (var image in result.Images)
            {
                var sample = new AdherenceSample(scene, image.Seed, image.Image, ShapeJudge.Judge(image.Image, scene));
                samples.Add(sample);
                onSample?.Invoke(sample);
            }
        }
        return new AdherenceReport(options, scheduler, guidance, samples);
    }
}
