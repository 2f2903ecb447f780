using System.Text.Json.Nodes;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>
/// The built-in text-to-image model: a small UNet and CLIP-style text encoder trained (by
/// tools/train-tiny-model) on a procedural world of flat shapes on coloured backgrounds, with
/// TAESD as its VAE. Its weights ship with the library as a state dict (diffusers/transformers
/// names, PyTorch layout); <see cref="ModelWriter"/> binds them into a diffusers-ONNX folder like
/// any other weights, so the model runs through exactly the contract, pipelines and schedulers of
/// a real SD 1.x export.
/// </summary>
public static class TinyShapesModel
{
    public const string Name = "tiny-shapes";

    /// <summary>model_index.json key that marks folders written here.</summary>
    public const string MarkerKey = ModelFolder.BuiltInMarkerKey;

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

    /// <summary>
    /// The architecture as <see cref="ModelWriter"/> takes it: SD 1.5's scheduler (the schedule it was
    /// trained with). The VAE entry only describes TAESD's latents (4 channels, factor 8, scaling 1):
    /// both VAE components are TAESD's graphs, written as they are.
    /// </summary>
    public static SyntheticPreset Architecture { get; } = new(Name, "built-in model trained on coloured shapes (64x64)",
        TextEncoder, UNet, new VaeConfig([64, 64, 64, 64], 1, 4, 8, 1.0), SyntheticPreset.Sd15Scheduler);

    /// <summary>The trained weights shipped in the library.</summary>
    public static SafeTensors BuiltInWeights => EmbeddedData.SafeTensors(WeightsFile);

    /// <summary>The shipped weights file as bytes (to hash it, or to copy it).</summary>
    public static byte[] BuiltInWeightsBytes => EmbeddedData.Bytes(WeightsFile);

    private const string WeightsFile = "tiny_shapes.safetensors";

    /// <summary>
    /// Writes the model folder (it appears only when complete) from the shipped weights or a file from
    /// the training tool. Weights for another configuration (a missing, extra or differently shaped
    /// tensor) are refused, naming the tensor.
    /// </summary>
    public static ModelWriteSummary Write(string folder, SafeTensors? weights = null)
    {
        weights ??= BuiltInWeights;
        var values = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var name in weights.Names) (shapes[name], values[name]) = weights[name];
        var trained = new NamedWeights(values, $"the weights in '{weights.Source}'", shapes);

        return ModelWriter.Write(folder, Architecture, trained, new ModelWriteOptions
        {
            Prebuilt = new Dictionary<string, PrebuiltComponent>
            {
                ["vae_decoder"] = TaesdComponent(Taesd.BuiltInDecoderWeights, w => Taesd.BuildDecoder(w, vaeContract: true)),
                ["vae_encoder"] = TaesdComponent(Taesd.BuiltInEncoderWeights, w => Taesd.BuildEncoder(w, vaeContract: true)),
            },
            ComponentsWritten = () =>
            {
                if (trained.Unused is [var first, ..] unused)
                    throw new ModelFolderException($"'{weights.Source}' has {unused.Count} tensor(s) the graphs do not use, e.g. '{first}'; the weights were trained for a different configuration.");
            },
            IndexEntries = new Dictionary<string, JsonNode?>
            {
                [MarkerKey] = new JsonObject
                {
                    ["model"] = Name,
                    ["weights"] = weights.Source,
                    ["guidance_scale"] = GuidanceScale,
                    ["note"] = "Trained by AsyncDiffusion's tools/train-tiny-model on procedural scenes of flat shapes (circle, square, triangle, star, ring) " +
                        "in eight colours on coloured backgrounds, 64x64. It draws prompts such as 'a red circle on a blue background'.",
                },
            },
        });
    }

    private static PrebuiltComponent TaesdComponent(SafeTensors weights, Func<SafeTensors, byte[]> build) => new(build(weights), new JsonObject
    {
        ["_class_name"] = "AutoencoderTiny",
        ["in_channels"] = 3,
        ["out_channels"] = 3,
        ["latent_channels"] = 4,
        ["block_out_channels"] = new JsonArray(64, 64, 64, 64),
        ["scaling_factor"] = 1.0,
        ["sample_size"] = ImageSize,
    }, weights.Names.Sum(n => weights.Tensors[n].ElementCount));
}
