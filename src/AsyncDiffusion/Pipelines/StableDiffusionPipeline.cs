using System.Diagnostics;
using AsyncDiffusion.Diagnostics;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The synchronous driver (txt2img with hires fix, img2img and inpainting): one request at a time, image after image,
/// through <see cref="RequestPreparation"/>, the denoising core (<see cref="UNetBatch"/>) and a
/// decoder. It is the baseline the asynchronous engine is measured against, and the engine's
/// sync mode.
/// </summary>
public sealed class StableDiffusionPipeline : IDisposable
{
    private readonly RequestPreparation _preparation;
    private readonly LatentDecoders _decoders;
    private readonly HiresUpscaling _upscaling;
    private readonly MemoryPolicy _memory;

    public StableDiffusionPipeline(ModelFolder model, SessionSettings? settings = null, GenerationLimits? limits = null)
    {
        Model = model;
        Limits = limits ?? GenerationLimits.Default;
        _preparation = new RequestPreparation(model, new PromptCache(model, capacity: 0)); // the baseline encodes every prompt
        _decoders = new LatentDecoders(model, settings ?? SessionSettings.Default);
        _upscaling = new HiresUpscaling(model, _decoders);
        _memory = (settings ?? SessionSettings.Default).Memory;
    }

    public ModelFolder Model { get; }
    public GenerationLimits Limits { get; }

    /// <summary>Validates <paramref name="request"/> (see <see cref="GenerationPlan.Create"/>) and runs it.</summary>
    public GenerationResult Generate(GenerationRequest request, Action<StepProgress>? onStep = null, CancellationToken cancellation = default) =>
        Run(GenerationPlan.Create(_memory.SequentialGuidance ? request with { CfgAsBatch = false } : request, Model, Limits), onStep, cancellation);

    /// <summary>Runs a plan made for this pipeline's model; <paramref name="timeline"/>, when given, gets a memory mark after every stage.</summary>
    public GenerationResult Run(GenerationPlan plan, Action<StepProgress>? onStep = null, CancellationToken cancellation = default, MemoryTimeline? timeline = null)
    {
        var total = Stopwatch.StartNew();
        var timings = new StageTimings();
        var memory = PeakMemory.Start();
        var decoder = _decoders.For(plan.Request.Decoder, plan.Request.Tiling);

        var images = new List<GeneratedImage>();
        var prepared = _preparation.Prepare(plan, timings, cancellation);
        timeline?.Mark(plan.Request.IsImageToImage ? "prompt and init image encoded" : "prompt encoded");
        foreach (var image in prepared)
        {
            DenoisingImage[] batch = [image];
            while (!image.IsDenoised)
            {
                cancellation.ThrowIfCancellationRequested();
                var clock = Stopwatch.StartNew();
                if (image.NeedsUpscale)
                {
                    image.StartSecondPass(_upscaling, cancellation);
                    timings.HiresUpscaleMs += clock.Elapsed.TotalMilliseconds;
                    timeline?.Mark($"image {image.Index + 1} upscaled for the hires pass");
                    continue;
                }
                double t = image.Timestep;
                var output = UNetBatch.Evaluate(Model, batch, cancellation);
                image.CompleteStep(UNetBatch.OutputOf(output, batch, 0));
                timings.UNetStepMs.Add(clock.Elapsed.TotalMilliseconds);
                onStep?.Invoke(new StepProgress(image.Index, plan.Seeds.Length, image.StepsDone, image.StepsTotal, t, image.Latents.ToArray(), image.LatentHeight, image.LatentWidth));
                timeline?.Mark($"image {image.Index + 1} step {image.StepsDone}/{image.StepsTotal}");
            }
            var decodeClock = Stopwatch.StartNew();
            var rgb = image.Decode(decoder, cancellation);
            timings.DecodeMs += decodeClock.Elapsed.TotalMilliseconds;
            timeline?.Mark($"image {image.Index + 1} decoded");
            images.Add(new GeneratedImage(rgb, image.Seed, GenerationInfotext.For(image)));
            memory.Sample();
        }
        timings.TotalMs = total.Elapsed.TotalMilliseconds;
        return new GenerationResult(images, timings, memory.Peak, plan.OutputWidth, plan.OutputHeight, plan.SchedulerName);
    }

    public void Dispose() => _decoders.Dispose();
}
