using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Compression;

/// <summary>
/// Measures a quantized folder against its float source. The two models are opened one after
/// the other (never both at once, to halve peak memory); every input the UNet comparison uses
/// comes from the float model, so the int8 UNet sees exactly the same tensors.
/// </summary>
internal static class QualityMeasurement
{
    public static IReadOnlyList<int> Timesteps { get; } = [999, 750, 500, 250, 50];

    /// <summary>A prompt no calibration run used.</summary>
    public const string Prompt = "a red fox in a snowy birch forest, morning mist, photograph";
    public const long Seed = 7;
    private const ulong NoiseSeed = 4242;

    private sealed record Measured(float[] Latents, RgbImage Image, IReadOnlyList<float[]> Outputs);

    public static QualityReport Run(string fp32Folder, string int8Folder, IReadOnlyDictionary<string, QuantizationRecord> records, QuantizeOptions options,
        IProgress<QuantizeProgress>? progress, CancellationToken cancellation)
    {
        bool unet = records.ContainsKey("unet");
        int total = 2 * (options.CalibrationSteps + (unet ? Timesteps.Count : 0)) + 1;
        int done = 0;
        void Tick() => progress?.Report(new QuantizeProgress("measuring quality", ++done, total));

        float[]? context = null;
        float[][]? samples = null;
        long[] sampleShape = [];
        var request = new GenerationRequest
        {
            Prompt = Prompt,
            Steps = options.CalibrationSteps,
            Width = options.Width,
            Height = options.Height,
            GuidanceScale = options.GuidanceScale,
            Seed = Seed,
        };

        Measured reference;
        using (var model = ModelFolder.Open(fp32Folder, options.Session))
        {
            var (latents, image) = Generate(model, request, options, Tick, cancellation);
            if (unet)
            {
                var plan = GenerationPlan.Create(request, model);
                sampleShape = [2, plan.LatentChannels, plan.LatentHeight, plan.LatentWidth];
                context = Context(model, cancellation);
                samples = NoisedSamples(model, latents);
            }
            reference = new Measured(latents, image, unet ? UNetOutputs(model, samples!, sampleShape, context!, Tick, cancellation) : []);
        }

        Measured quantized;
        double? vaePsnr = null;
        using (var model = ModelFolder.Open(int8Folder, options.Session))
        {
            var (latents, image) = Generate(model, request, options, Tick, cancellation);
            quantized = new Measured(latents, image, unet ? UNetOutputs(model, samples!, sampleShape, context!, Tick, cancellation) : []);
            if (records.ContainsKey("vae_decoder"))
            {
                var plan = GenerationPlan.Create(request, model);
                var decoded = model.VaeDecoder.DecodeImage(reference.Latents, plan.LatentChannels, plan.LatentHeight, plan.LatentWidth, cancellation);
                vaePsnr = SignalComparison.PsnrDb(reference.Image, decoded);
            }
        }

        var perTimestep = new List<TimestepSnr>();
        for (int i = 0; i < reference.Outputs.Count; i++)
            perTimestep.Add(new TimestepSnr(Timesteps[i], Math.Round(SignalComparison.SnrDb(reference.Outputs[i], quantized.Outputs[i]), 2),
                Math.Round(SignalComparison.SnrDb(Guided(reference.Outputs[i], options.GuidanceScale), Guided(quantized.Outputs[i], options.GuidanceScale)), 2)));

        double latentSnr = SignalComparison.SnrDb(reference.Latents, quantized.Latents);
        var endToEnd = new EndToEndComparison(Prompt, Seed, options.CalibrationSteps, $"{reference.Image.Width}x{reference.Image.Height}",
            Math.Round(latentSnr, 2), Math.Round(Math.Pow(10, -latentSnr / 20), 4), Math.Round(SignalComparison.PsnrDb(reference.Image, quantized.Image), 2),
            vaePsnr is double v ? Math.Round(v, 2) : null);

        var taesd = TaesdQuantization.Check(options.Clipping, options.Session);
        Tick();
        return new QualityReport(QualityReport.WeightSqnrOf(records), perTimestep, endToEnd, taesd.Psnr);
    }

    private static (float[] Latents, RgbImage Image) Generate(ModelFolder model, GenerationRequest request, QuantizeOptions options, Action tick,
        CancellationToken cancellation)
    {
        using var pipeline = new StableDiffusionPipeline(model, options.Session);
        float[]? last = null;
        var result = pipeline.Generate(request, step =>
        {
            last = step.Latents.ToArray();
            tick();
        }, cancellation);
        return (last!, result.Images[0].Image);
    }

    // Unconditional ("") and conditional text states, as one guidance batch.
    private static float[] Context(ModelFolder model, CancellationToken cancellation)
    {
        var states = new PromptCache(model, 0).Encode(Prompt, "", guidance: true, clipSkip: 1, new StageTimings(), cancellation);
        return [.. states.Unconditional!, .. states.Conditional];
    }

    // x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε for each report timestep, with x0 the float model's own final latents.
    private static float[][] NoisedSamples(ModelFolder model, float[] clean)
    {
        var alphas = SchedulerRegistry.CreateDefault(model.SchedulerConfig).Table.AlphasCumprod;
        var rng = NoiseGenerators.Create(NoiseGeneratorKind.Torch, NoiseSeed);
        var samples = new float[Timesteps.Count][];
        for (int i = 0; i < samples.Length; i++)
        {
            var noise = new float[clean.Length];
            rng.NextGaussian(noise);
            double a = alphas[Math.Min(Timesteps[i], alphas.Length - 1)];
            float keep = (float)Math.Sqrt(a), add = (float)Math.Sqrt(1 - a);
            samples[i] = new float[2 * clean.Length];
            for (int j = 0; j < clean.Length; j++) samples[i][j] = samples[i][clean.Length + j] = keep * clean[j] + add * noise[j];
        }
        return samples;
    }

    private static IReadOnlyList<float[]> UNetOutputs(ModelFolder model, float[][] samples, long[] shape, float[] context, Action tick, CancellationToken cancellation)
    {
        int tokens = model.Tokenizer.MaxLength, hidden = model.TextEncoder.HiddenSize;
        var outputs = new List<float[]>();
        for (int i = 0; i < samples.Length; i++)
        {
            outputs.Add(model.UNet.Predict(samples[i], shape, [Timesteps[i], Timesteps[i]], context, [2, tokens, hidden], cancellation));
            tick();
        }
        return outputs;
    }

    private static float[] Guided(float[] rows, double scale)
    {
        int n = rows.Length / 2;
        var guided = new float[n];
        for (int i = 0; i < n; i++) guided[i] = rows[i] + (float)scale * (rows[n + i] - rows[i]);
        return guided;
    }
}
