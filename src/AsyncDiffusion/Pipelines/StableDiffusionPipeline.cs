using AsyncDiffusion.Diagnostics;
using System.Diagnostics;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Benchmarking;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The synchronous Stable Diffusion pipeline (txt2img and img2img): one request at a time through
/// prompt encoding, denoising with classifier-free guidance, and decoding. It is the baseline the
/// asynchronous engine is measured against, and drives the same <see cref="ImageJob"/> steps.
/// </summary>
public sealed class StableDiffusionPipeline : IDisposable
{
    private readonly Lazy<TaesdDecoder> _taesd;
    private readonly PromptCache _prompts; // capacity 0: the baseline encodes every prompt

    public StableDiffusionPipeline(ModelFolder model, SessionSettings? settings = null, GenerationLimits? limits = null)
    {
        Model = model;
        Limits = limits ?? GenerationLimits.Default;
        _prompts = new PromptCache(model, capacity: 0);
        _taesd = new Lazy<TaesdDecoder>(() => Taesd.LoadDecoder(settings ?? SessionSettings.Default));
    }

    public ModelFolder Model { get; }
    public GenerationLimits Limits { get; }
    public TaesdDecoder TaesdDecoder => _taesd.Value;

    public GenerationResult Generate(GenerationRequest request, Action<StepProgress>? onStep = null, CancellationToken cancellation = default)
    {
        var total = Stopwatch.StartNew();
        var plan = GenerationPlan.Create(request, Model, Limits);
        var timings = new StageTimings();
        var memory = PeakMemory.Start();

        var prompt = _prompts.Encode(request.Prompt, plan.Request.NegativePrompt, request.UsesGuidance, timings, cancellation);
        InitImageLatents? encoded = null;
        if (request.InitImage is { } init)
        {
            var clock = Stopwatch.StartNew();
            encoded = ImageDecoding.EncodeInitImage(Model, init, plan.Width, plan.Height, cancellation);
            timings.ImageEncodeMs += clock.Elapsed.TotalMilliseconds;
        }

        var images = new List<GeneratedImage>();
        for (int i = 0; i < plan.Seeds.Length; i++)
        {
            var job = encoded is null ? ImageJob.TextToImage(plan, i, prompt, Model) : ImageJob.ImageToImage(plan, i, prompt, Model, encoded);
            Denoise(job, plan, timings, onStep, cancellation);
            var clock = Stopwatch.StartNew();
            var image = ImageDecoding.Decode(Model, request.Decoder == DecoderKind.Taesd ? _taesd.Value : null, job.Latents, job.Channels, job.LatentHeight, job.LatentWidth, cancellation);
            timings.DecodeMs += clock.Elapsed.TotalMilliseconds;
            images.Add(new GeneratedImage(image, job.Seed, GenerationInfotext.For(plan, job.Seed)));
            memory.Sample();
        }
        timings.TotalMs = total.Elapsed.TotalMilliseconds;
        return new GenerationResult(images, timings, memory.Peak, plan.Width, plan.Height, plan.SchedulerName);
    }

    private void Denoise(ImageJob job, GenerationPlan plan, StageTimings timings, Action<StepProgress>? onStep, CancellationToken cancellation)
    {
        int n = job.LatentSize;
        int contextSize = job.Rows * Model.Tokenizer.MaxLength * Model.TextEncoder.HiddenSize;
        var samples = new float[job.Rows * n];
        var context = new float[contextSize];
        long[] contextShape1 = [1, Model.Tokenizer.MaxLength, Model.TextEncoder.HiddenSize];
        while (!job.IsDenoised)
        {
            cancellation.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            double t = job.Timestep;
            job.WriteInputs(samples, context);
            float[] output;
            if (job.Rows == 2 && !plan.Request.CfgAsBatch)
            {
                // Two calls of batch 1: less memory, same arithmetic per row.
                int half = contextSize / 2;
                var uncond = Model.UNet.Predict(samples.AsSpan(0, n), [1, job.Channels, job.LatentHeight, job.LatentWidth], [t], context.AsSpan(0, half), contextShape1, cancellation);
                var cond = Model.UNet.Predict(samples.AsSpan(n, n), [1, job.Channels, job.LatentHeight, job.LatentWidth], [t], context.AsSpan(half, half), contextShape1, cancellation);
                output = [.. uncond, .. cond];
            }
            else
            {
                var ts = Enumerable.Repeat(t, job.Rows).ToArray();
                output = Model.UNet.Predict(samples, [job.Rows, job.Channels, job.LatentHeight, job.LatentWidth], ts, context,
                    [job.Rows, Model.Tokenizer.MaxLength, Model.TextEncoder.HiddenSize], cancellation);
            }
            job.CompleteStep(output);
            timings.UNetStepMs.Add(clock.Elapsed.TotalMilliseconds);
            onStep?.Invoke(new StepProgress(job.Index, plan.Seeds.Length, job.StepsDone, job.StepsTotal, t, job.Latents.ToArray()));
        }
    }

    public void Dispose()
    {
        if (_taesd.IsValueCreated) _taesd.Value.Dispose();
    }
}
