using System.Diagnostics;
using System.Text.Json.Nodes;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>What <see cref="TinyShapesModel.Write"/> wrote.</summary>
public sealed record TinyShapesSummary(string Folder, IReadOnlyDictionary<string, long> Parameters, long Bytes, TimeSpan Elapsed);

/// <summary>
/// The built-in text-to-image model: a small UNet and CLIP-style text encoder trained (by
/// tools/train-tiny-model) on a procedural world of flat shapes on coloured backgrounds, with
/// TAESD as its VAE. Its weights ship with the library; this writes them into a diffusers-ONNX
/// folder through the same graph builder as the synthetic presets, so the model runs through
/// exactly the contract, pipelines and schedulers of a real SD 1.x export.
/// </summary>
public static class TinyShapesModel
{
    public const string Name = "tiny-shapes";

    /// <summary>model_index.json key that marks folders written here.</summary>
    public const string MarkerKey = "asyncdiffusion_builtin";

    /// <summary>
    /// The classifier-free guidance it is made for (written to model_index.json). Measured on held-out
    /// prompts: 2–3 draws best; from about 5 the guided prediction overshoots the flat colours it
    /// learned and images break up (at 7.5 most objects are wrong).
    /// </summary>
    public const double GuidanceScale = 2.5;

    /// <summary>Trained image size; the UNet's sample size × the VAE factor.</summary>
    public const int ImageSize = 64;

    // Must match UNET and TEXT in tools/train-tiny-model/train.py.
    public static ClipTextConfig TextEncoder { get; } = new(49408, 32, 2, 4, 128, 77, true);
    public static UNetConfig UNet { get; } = new([32, 64], [true, true], 1, 32, [2, 4], false, 8, ImageSize / 8);

    /// <summary>The trained weights shipped in the library (builder names and shapes; see <see cref="TrainedWeights"/>).</summary>
    public static SafeTensors BuiltInWeights => EmbeddedData.SafeTensors(WeightsFile);

    /// <summary>The shipped weights file as bytes (to hash it, or to copy it).</summary>
    public static byte[] BuiltInWeightsBytes => EmbeddedData.Bytes(WeightsFile);

    private const string WeightsFile = "tiny_shapes.safetensors";

    // SD 1.5's: the schedule it was trained with (scaled_linear betas, 1000 steps, epsilon), sampled with PNDM by default.
    private const string Scheduler = SyntheticPreset.Sd15Scheduler;

    /// <summary>Writes the model folder (it appears only when complete). A weights file for another configuration is refused.</summary>
    public static TinyShapesSummary Write(string folder, SafeTensors? weights = null)
    {
        weights ??= BuiltInWeights;
        var clock = Stopwatch.StartNew();
        var vintage = ContractVintage.Optimum124;
        var taesdDecoder = Taesd.BuiltInDecoderWeights;
        var taesdEncoder = Taesd.BuiltInEncoderWeights;
        var parameters = new Dictionary<string, long>();
        folder = SyntheticModelWriter.WriteAtomically(folder, staging =>
        {
            var trained = new TrainedWeights(weights);
            var unused = new SeededWeights(0);
            parameters["text_encoder"] = SyntheticModelWriter.Component(staging, "text_encoder", null, unused, false,
                g => ClipTextGraph.Build(g, TextEncoder, vintage), trained);
            parameters["unet"] = SyntheticModelWriter.Component(staging, "unet", vintage.ExternalDataName, unused, false,
                g => UNetGraph.Build(g, UNet, vintage), trained);
            trained.EnsureAllUsed();
            WriteOnnx(staging, "vae_decoder", Taesd.BuildDecoder(taesdDecoder, vaeContract: true));
            WriteOnnx(staging, "vae_encoder", Taesd.BuildEncoder(taesdEncoder, vaeContract: true));
            parameters["vae_decoder"] = taesdDecoder.Names.Sum(n => taesdDecoder[n].Values.LongLength);
            parameters["vae_encoder"] = taesdEncoder.Names.Sum(n => taesdEncoder[n].Values.LongLength);

            SyntheticModelWriter.WriteTokenizer(Path.Combine(staging, "tokenizer"), null, TextEncoder.MaxPositions);
            SyntheticModelWriter.WriteScheduler(staging, Scheduler);
            SyntheticModelWriter.WriteJson(Path.Combine(staging, "model_index.json"), SyntheticModelWriter.ModelIndex(Scheduler, vintage, MarkerKey, new JsonObject
            {
                ["model"] = Name,
                ["weights"] = weights.Source,
                ["guidance_scale"] = GuidanceScale,
                ["note"] = "Trained by AsyncDiffusion's tools/train-tiny-model on procedural scenes of flat shapes (circle, square, triangle, star, ring) " +
                    "in eight colours on coloured backgrounds, 64x64. It draws prompts such as 'a red circle on a blue background'.",
            }));
            SyntheticModelWriter.WriteTextAndUNetConfigs(staging, TextEncoder, UNet);
            foreach (var part in new[] { "vae_decoder", "vae_encoder" })
                SyntheticModelWriter.WriteJson(Path.Combine(staging, part, "config.json"), new JsonObject
                {
                    ["_class_name"] = "AutoencoderTiny",
                    ["in_channels"] = 3,
                    ["out_channels"] = 3,
                    ["latent_channels"] = 4,
                    ["block_out_channels"] = new JsonArray(64, 64, 64, 64),
                    ["scaling_factor"] = 1.0,
                    ["sample_size"] = ImageSize,
                });
        });
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return new TinyShapesSummary(folder, parameters, bytes, clock.Elapsed);
    }

    private static void WriteOnnx(string root, string component, byte[] model)
    {
        Directory.CreateDirectory(Path.Combine(root, component));
        File.WriteAllBytes(Path.Combine(root, component, "model.onnx"), model);
    }
}
