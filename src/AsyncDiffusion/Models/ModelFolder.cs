using System.Text.Json;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Models;

/// <summary>
/// A diffusers-layout ONNX model folder (what optimum or diffusers' converter exports), opened
/// once: tokenizer, scheduler config and one ONNX Runtime session per component, with the
/// contract read from the sessions and configs and cross-checked. Sessions are shared by every
/// request. Opening fails with a message naming the file and what was expected, and disposes
/// whatever it had opened; what the folder's JSON files already tell is checked before any
/// session is created (<see cref="Validate"/>).
/// </summary>
public sealed class ModelFolder : IDisposable
{
    public string Path { get; }
    public string Name => System.IO.Path.GetFileName(Path.TrimEnd(System.IO.Path.DirectorySeparatorChar));
    public string? PipelineClass { get; }

    /// <summary>The key in model_index.json that marks a folder written by the synthetic model writer.</summary>
    public const string SyntheticMarkerKey = "asyncdiffusion_synthetic";

    /// <summary>Set for synthetic model folders (real architecture, random weights): the preset name.</summary>
    public string? SyntheticPreset { get; }

    /// <summary>The key in model_index.json that marks AsyncDiffusion's built-in model; it may name the guidance scale the model was made for.</summary>
    public const string BuiltInMarkerKey = "asyncdiffusion_builtin";

    /// <summary>The guidance scale the model was made for, when its folder says (the built-in tiny-shapes model does); else null.</summary>
    public double? RecommendedGuidanceScale { get; }

    /// <summary>The key in model_index.json that marks a folder written by <c>models quantize</c>.</summary>
    public const string QuantizationMarkerKey = "asyncdiffusion_quantization";

    /// <summary>For quantized folders: each quantized component and a summary of what in it is int8.</summary>
    public IReadOnlyDictionary<string, string>? Quantization { get; }

    public ClipTokenizer Tokenizer { get; }
    public SchedulerConfig SchedulerConfig { get; }
    public TextEncoder TextEncoder { get; }
    public UNet UNet { get; }
    public VaeDecoder VaeDecoder { get; }
    public VaeEncoder? VaeEncoder { get; }

    public PredictionType Prediction { get; }
    public int LatentChannels => UNet.LatentChannels;
    public int VaeScaleFactor => VaeDecoder.ScaleFactor;
    public double ScalingFactor => VaeDecoder.ScalingFactor;

    /// <summary>Image width and height must be multiples of this (VAE factor × the UNet's down-sampling).</summary>
    public int SizeMultiple => VaeScaleFactor * UNet.LatentMultiple;

    /// <summary>The size the model was made for: the UNet's sample size × the VAE factor (512 when unknown).</summary>
    public int NativeSize => UNet.SampleSize is int s ? s * VaeScaleFactor : 512;

    private ModelFolder(string path, ModelIndex index, ClipTokenizer tokenizer, SchedulerConfig scheduler,
        TextEncoder text, UNet unet, VaeDecoder decoder, VaeEncoder? encoder)
    {
        Path = path;
        PipelineClass = index.PipelineClass;
        SyntheticPreset = index.Synthetic;
        Quantization = index.Quantization;
        RecommendedGuidanceScale = index.Guidance;
        Tokenizer = tokenizer;
        SchedulerConfig = scheduler;
        TextEncoder = text;
        UNet = unet;
        VaeDecoder = decoder;
        VaeEncoder = encoder;
        Prediction = SchedulerRegistry.PredictionOf(scheduler);
    }

    public static ModelFolder Open(string path, SessionSettings? settings = null)
    {
        settings ??= SessionSettings.Default;
        var (full, index, tokenizer, scheduler) = ReadFiles(path);
        path = full;
        var opened = new List<IDisposable>();
        try
        {
            var text = Track(opened, TextEncoder.Load(System.IO.Path.Combine(path, "text_encoder"), settings));
            var unet = Track(opened, UNet.Load(System.IO.Path.Combine(path, "unet"), settings));
            double? vaeScaling = ReadVaeScaling(path);
            var decoder = Track(opened, VaeDecoder.Load(System.IO.Path.Combine(path, "vae_decoder"), settings, vaeScaling));
            string encoderDir = System.IO.Path.Combine(path, "vae_encoder");
            var encoder = File.Exists(System.IO.Path.Combine(encoderDir, "model.onnx")) ? Track(opened, VaeEncoder.Load(encoderDir, settings, decoder.ScalingFactor)) : null;

            if (unet.CrossAttentionDim is int cross && cross != text.HiddenSize)
                throw new ModelFolderException(
                    $"'{unet.Path}' attends to {cross}-wide text states but '{text.Path}' produces {text.HiddenSize}; the text encoder and UNet must come from the same model.");
            if (decoder.LatentChannels != unet.LatentChannels)
                throw new ModelFolderException(
                    $"'{decoder.Path}' decodes {decoder.LatentChannels}-channel latents but '{unet.Path}' works on {unet.LatentChannels}; the VAE and UNet must come from the same model.");
            if (unet.IsInpainting && encoder is null)
                throw new ModelFolderException(
                    $"'{unet.Path}' is an inpainting UNet ({unet.InputChannels} input channels), which needs the masked image's latents at every step, but '{path}' has no vae_encoder/model.onnx; export the model with its VAE encoder.");
            CheckVocabulary(tokenizer, text);

            return new ModelFolder(path, index, tokenizer, scheduler, text, unet, decoder, encoder);
        }
        catch
        {
            foreach (var d in opened) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks everything the folder's files tell without creating a session (fast even for
    /// sd15): the layout, model_index.json, the tokenizer, the scheduler config and the
    /// component configs, and that the components' configs agree. Throws what <see cref="Open"/> would.
    /// </summary>
    public static void Validate(string path) => ReadFiles(path);

    private static (string Path, ModelIndex Index, ClipTokenizer Tokenizer, SchedulerConfig Scheduler) ReadFiles(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!Directory.Exists(path))
            throw new ModelFolderException($"Model folder '{path}' does not exist; expected a diffusers-ONNX folder (model_index.json, tokenizer/, scheduler/, text_encoder/, unet/, vae_decoder/).");
        RejectUnsupportedLayouts(path);
        var index = ReadModelIndex(path);

        foreach (var required in new[] { "tokenizer", "scheduler", "text_encoder", "unet", "vae_decoder" })
            if (!Directory.Exists(System.IO.Path.Combine(path, required)))
                throw new ModelFolderException($"Model folder '{path}' has no {required}/ folder; a diffusers-ONNX export has tokenizer/, scheduler/, text_encoder/, unet/ and vae_decoder/ (vae_encoder/ for img2img).");

        ClipTokenizer tokenizer;
        SchedulerConfig scheduler;
        try
        {
            tokenizer = ClipTokenizer.Load(System.IO.Path.Combine(path, "tokenizer"));
            scheduler = SchedulerConfig.Load(System.IO.Path.Combine(path, "scheduler", "scheduler_config.json"));
        }
        catch (AsyncDiffusionException e) when (e is not ModelFolderException)
        {
            throw new ModelFolderException(e.Message, e); // a fault of the folder, whose message names server files
        }
        if (tokenizer.MaxLength < 3)
            throw new ModelFolderException($"'{path}/tokenizer' has model_max_length {tokenizer.MaxLength}; expected 77.");
        ModelFolderCheck.Run(path, tokenizer, scheduler);
        return (path, index, tokenizer, scheduler);
    }

    // Where text_encoder/config.json does not give vocab_size, one encode of the tokenizer's highest id tells whether the embeddings reach it.
    private static void CheckVocabulary(ClipTokenizer tokenizer, TextEncoder text)
    {
        if (ModelFolderCheck.DeclaresVocabulary(System.IO.Path.GetDirectoryName(text.Path)!)) return;
        var ids = new int[tokenizer.MaxLength];
        Array.Fill(ids, tokenizer.Vocabulary.Count - 1);
        try
        {
            text.Encode(ids, 1);
        }
        catch (GenerationFailedException)
        {
            throw new ModelFolderException(
                $"'{text.Path}' cannot embed token id {tokenizer.Vocabulary.Count - 1}, but '{System.IO.Path.Combine(tokenizer.Vocabulary.Source, "vocab.json")}' has {tokenizer.Vocabulary.Count:N0} tokens; the tokenizer and text encoder must come from the same model.");
        }
    }

    private static T Track<T>(List<IDisposable> opened, T item) where T : IDisposable
    {
        opened.Add(item);
        return item;
    }

    private static void RejectUnsupportedLayouts(string path)
    {
        bool Has(string dir) => Directory.Exists(System.IO.Path.Combine(path, dir));
        if (Has("transformer") || Has("text_encoder_3"))
            throw new ModelFolderException($"'{path}' has a Stable Diffusion 3 layout (transformer/, text_encoder_3/), which AsyncDiffusion does not support yet; supported: SD 1.x and 2.x diffusers-ONNX folders.");
        if (Has("text_encoder_2") || Has("tokenizer_2"))
            throw new ModelFolderException($"'{path}' has an SDXL layout (text_encoder_2/, tokenizer_2/), which AsyncDiffusion does not support yet; supported: SD 1.x and 2.x diffusers-ONNX folders.");
    }

    private sealed record ModelIndex(string? PipelineClass, string? Synthetic, IReadOnlyDictionary<string, string>? Quantization, double? Guidance);

    private static ModelIndex ReadModelIndex(string path)
    {
        string index = System.IO.Path.Combine(path, "model_index.json");
        if (!File.Exists(index))
            throw new ModelFolderException($"'{index}' not found; a diffusers-ONNX model folder starts with model_index.json.");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelFolderException($"'{index}' holds a JSON {root.ValueKind}; expected an object with _class_name and components.");
            string? cls = null;
            if (root.TryGetProperty("_class_name", out var c))
                cls = c.ValueKind == JsonValueKind.String ? c.GetString()
                    : throw new ModelFolderException($"'{index}': _class_name is {c.GetRawText()}; expected a pipeline class name such as \"OnnxStableDiffusionPipeline\".");
            if (cls is not null && (cls.Contains("XL", StringComparison.Ordinal) || cls.Contains("StableDiffusion3", StringComparison.Ordinal)))
                throw new ModelFolderException($"'{index}' describes a {cls}, which AsyncDiffusion does not support yet; supported: SD 1.x and 2.x pipelines.");
            string? synthetic = root.TryGetProperty(SyntheticMarkerKey, out var s) && s.ValueKind == JsonValueKind.Object
                && s.TryGetProperty("preset", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
            foreach (var component in new[] { "tokenizer", "scheduler", "text_encoder", "unet", "vae_decoder", "vae_encoder" })
                if (root.TryGetProperty(component, out var entry) && entry.ValueKind is not (JsonValueKind.Array or JsonValueKind.Null))
                    throw new ModelFolderException($"'{index}': {component} is {entry.GetRawText()}; expected [library, class] such as [\"diffusers\", \"OnnxRuntimeModel\"].");
            Dictionary<string, string>? quantization = null;
            if (root.TryGetProperty(QuantizationMarkerKey, out var q))
            {
                quantization = new Dictionary<string, string>();
                if (q.ValueKind == JsonValueKind.Object && q.TryGetProperty("components", out var parts) && parts.ValueKind == JsonValueKind.Object)
                    foreach (var part in parts.EnumerateObject()) quantization[part.Name] = part.Value.ToString();
            }
            double? guidance = root.TryGetProperty(BuiltInMarkerKey, out var b) && b.ValueKind == JsonValueKind.Object
                && b.TryGetProperty("guidance_scale", out var g) && g.ValueKind == JsonValueKind.Number ? g.GetDouble() : null;
            return new ModelIndex(cls, synthetic, quantization, guidance);
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{index}' is not valid JSON ({e.Message}).");
        }
    }

    // diffusers' own layout keeps the scaling factor in vae/config.json.
    private static double? ReadVaeScaling(string path)
    {
        string config = System.IO.Path.Combine(path, "vae", "config.json");
        if (!File.Exists(config)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(config));
            return doc.RootElement.TryGetProperty("scaling_factor", out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{config}' is not valid JSON ({e.Message}).");
        }
    }

    /// <summary>Which export generation the UNet's timestep input points to.</summary>
    public string Vintage => UNet.Timestep switch
    {
        TimestepKind.Int64PerItem => "diffusers converter before Nov 2022 (int64 timestep)",
        TimestepKind.FloatScalar => "optimum 1.24 or later (0-d float timestep)",
        _ => "optimum 1.6-1.23 or diffusers converter (float timestep [batch])",
    };

    /// <summary>How each component was loaded (time, optimised-graph cache hit or not, fused attentions).</summary>
    public IReadOnlyList<ModelLoad> Loads =>
        new ModelComponent?[] { TextEncoder, UNet, VaeDecoder, VaeEncoder }.Select(c => c?.Model.Load).OfType<ModelLoad>().ToArray();

    /// <summary>The operator profiles of the components that recorded one (component folder name → JSON file).</summary>
    public IReadOnlyList<(string Component, string File)> EndProfiling()
    {
        var files = new List<(string, string)>();
        foreach (var (name, component) in new (string, ModelComponent?)[] { ("text_encoder", TextEncoder), ("unet", UNet), ("vae_decoder", VaeDecoder), ("vae_encoder", VaeEncoder) })
            if (component?.Model.EndProfiling() is { } file) files.Add((name, file));
        return files;
    }

    public void Dispose()
    {
        TextEncoder.Dispose();
        UNet.Dispose();
        VaeDecoder.Dispose();
        VaeEncoder?.Dispose();
    }
}
