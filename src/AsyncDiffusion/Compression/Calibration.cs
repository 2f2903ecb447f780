using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Pipelines;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Compression;

/// <summary>
/// Runs the model's own work through a calibration folder: for each prompt a full txt2img
/// trajectory at the target size (so the UNet sees timesteps from the whole schedule, with
/// classifier-free guidance as users run it), the VAE decode of its result, and the VAE
/// encoder on the decoded image (what img2img feeds it). Collectors attached to the
/// components see every exposed tensor of every call.
/// </summary>
internal static class Calibration
{
    private const long FirstSeed = 1000;

    public static void Run(string folder, IReadOnlyDictionary<string, CalibrationCollector> collectors, QuantizeOptions options,
        IProgress<QuantizeProgress>? progress, CancellationToken cancellation)
    {
        // Basic optimisation loads a calibration copy several times faster; the values are the same.
        var settings = options.Session with { Optimization = GraphOptimizationLevel.ORT_ENABLE_BASIC };
        using var model = ModelFolder.Open(folder, settings);
        Attach(model, collectors);
        using var pipeline = new StableDiffusionPipeline(model, settings);
        var prompts = options.CalibrationPrompts.Where(p => !string.IsNullOrWhiteSpace(p)).ToArray();
        int stepsEach = -1, done = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            var request = new GenerationRequest
            {
                Prompt = prompts[i],
                Steps = options.CalibrationSteps,
                Width = options.Width,
                Height = options.Height,
                GuidanceScale = options.GuidanceScale,
                Seed = FirstSeed + i,
            };
            var plan = GenerationPlan.Create(request, model);
            if (stepsEach < 0) stepsEach = plan.StepsPerImage;
            int total = prompts.Length * stepsEach;
            progress?.Report(new QuantizeProgress("calibrating", done, total));
            var result = pipeline.Run(plan, step => progress?.Report(new QuantizeProgress("calibrating", ++done, total)), cancellation);
            model.VaeEncoder?.EncodeImage(result.Images[0].Image, cancellation);
        }
    }

    private static void Attach(ModelFolder model, IReadOnlyDictionary<string, CalibrationCollector> collectors)
    {
        foreach (var (component, collector) in collectors)
        {
            ModelComponent? part = component switch
            {
                "unet" => model.UNet,
                "vae_decoder" => model.VaeDecoder,
                "vae_encoder" => model.VaeEncoder,
                "text_encoder" => model.TextEncoder,
                _ => null,
            };
            if (part is null) throw new InvalidOperationException($"No calibration route for component '{component}'.");
            part.Model.Observer = collector;
        }
    }
}
