using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>What <see cref="ModelWriter"/> writes besides the weights.</summary>
public sealed record ModelWriteOptions
{
    public ContractVintage Vintage { get; init; } = ContractVintage.Optimum124;

    /// <summary>Store parameters, inputs and outputs as float16.</summary>
    public bool Half { get; init; }

    /// <summary>Extra model_index.json entries (a marker saying where the weights came from).</summary>
    public IReadOnlyDictionary<string, JsonNode?> IndexEntries { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>A tokenizer folder to copy (vocab.json, merges.txt, …); null: CLIP's built-in vocabulary.</summary>
    public string? TokenizerFolder { get; init; }

    /// <summary>Called once every component is written, before model_index.json (to add what binding the weights found).</summary>
    public Action? ComponentsWritten { get; init; }

    /// <summary>Refuse a non-empty target folder (else it is replaced once the new one is complete).</summary>
    public bool RequireEmptyTarget { get; init; } = true;

    /// <summary>
    /// Components written as given instead of built from the architecture and the weight source
    /// (by component name: TAESD as a model's vae_decoder and vae_encoder).
    /// </summary>
    public IReadOnlyDictionary<string, PrebuiltComponent> Prebuilt { get; init; } = new Dictionary<string, PrebuiltComponent>();
}

/// <summary>A component ready to write: its ONNX model, its config.json and how many parameters it has.</summary>
public sealed record PrebuiltComponent(byte[] Model, JsonObject Config, long Parameters);

/// <summary>What <see cref="ModelWriter"/> wrote.</summary>
public sealed record ModelWriteSummary(string Folder, IReadOnlyDictionary<string, long> Parameters, long Bytes, TimeSpan Elapsed);

/// <summary>
/// Writes a complete diffusers-ONNX model folder (model_index.json, scheduler, tokenizer, text
/// encoder, UNet with external data, VAE decoder and encoder, per-component configs) for an SD
/// architecture, binding every parameter from a weight source: seeded random values, a
/// dictionary of named tensors, a checkpoint. The folder appears only when complete: it is
/// written beside the target and moved into place; a failure leaves nothing behind.
/// </summary>
public static class ModelWriter
{
    public static ModelWriteSummary Write(string folder, SyntheticPreset architecture, IWeightSource weights, ModelWriteOptions? options = null)
    {
        options ??= new ModelWriteOptions();
        var vintage = options.Vintage;
        bool half = options.Half;
        folder = Path.GetFullPath(folder);
        if (options.RequireEmptyTarget && (File.Exists(folder) || (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())))
            throw new AsyncDiffusionException($"'{folder}' already exists and is not empty; choose a new folder for the model.");

        var components = Components(architecture, vintage);
        if (options.Prebuilt.Keys.FirstOrDefault(k => components.All(c => c.Name != k)) is { } unknown)
            throw new ArgumentException($"No component '{unknown}' to replace; components are {string.Join(", ", components.Select(c => c.Name))}.");

        var clock = Stopwatch.StartNew();
        string staging = folder.TrimEnd(Path.DirectorySeparatorChar) + $".partial-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        var parameters = new Dictionary<string, long>();
        try
        {
            foreach (var (name, build) in components)
                parameters[name] = options.Prebuilt.TryGetValue(name, out var prebuilt)
                    ? WritePrebuilt(staging, name, prebuilt)
                    : Component(staging, name, name == "unet" ? vintage.ExternalDataName : null, weights, half, build);
            options.ComponentsWritten?.Invoke();

            WriteTokenizer(Path.Combine(staging, "tokenizer"), architecture, options.TokenizerFolder);
            Directory.CreateDirectory(Path.Combine(staging, "scheduler"));
            File.WriteAllText(Path.Combine(staging, "scheduler", "scheduler_config.json"), architecture.SchedulerConfigJson.Trim() + "\n");
            WriteJson(Path.Combine(staging, "model_index.json"), ModelIndex(architecture, vintage, options));
            if (vintage.WriteComponentConfigs) WriteComponentConfigs(staging, architecture);
            foreach (var (name, prebuilt) in options.Prebuilt) WriteJson(Path.Combine(staging, name, "config.json"), prebuilt.Config);

            Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            Directory.Move(staging, folder);
        }
        catch
        {
            try { Directory.Delete(staging, recursive: true); } catch (IOException) { }
            throw;
        }
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return new ModelWriteSummary(folder, parameters, bytes, clock.Elapsed);
    }

    /// <summary>
    /// Every learned parameter of the architecture, per component (text_encoder, unet,
    /// vae_decoder, vae_encoder), with state-dict names and shapes; nothing is allocated.
    /// Fill a dictionary with these and bind it with <see cref="NamedWeights"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<ParameterSpec>> Parameters(SyntheticPreset architecture, ContractVintage? vintage = null)
    {
        var result = new Dictionary<string, IReadOnlyList<ParameterSpec>>();
        foreach (var (name, build) in Components(architecture, vintage ?? ContractVintage.Optimum124))
        {
            using var g = new OnnxGraphBuilder(name, new SeededWeights(0), half: false, shapesOnly: true);
            build(g);
            result[name] = g.Specs.ToArray();
        }
        return result;
    }

    private static (string Name, Action<OnnxGraphBuilder> Build)[] Components(SyntheticPreset p, ContractVintage vintage) =>
    [
        ("text_encoder", g => ClipTextGraph.Build(g, p.TextEncoder, vintage)),
        ("unet", g => UNetGraph.Build(g, p.UNet, vintage)),
        ("vae_decoder", g => AutoencoderGraph.BuildDecoder(g, p.Vae)),
        ("vae_encoder", g => AutoencoderGraph.BuildEncoder(g, p.Vae, vintage.EncoderSamplesInGraph)),
    ];

    private static long Component(string root, string name, string? externalData, IWeightSource weights, bool half, Action<OnnxGraphBuilder> build)
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        using var g = new OnnxGraphBuilder(name, weights, half, externalData is null ? null : Path.Combine(dir, externalData));
        build(g);
        g.Save(Path.Combine(dir, "model.onnx"), "asyncdiffusion");
        return g.ParameterCount;
    }

    private static long WritePrebuilt(string root, string name, PrebuiltComponent component)
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "model.onnx"), component.Model);
        return component.Parameters;
    }

    private static void WriteTokenizer(string dir, SyntheticPreset preset, string? from)
    {
        if (from is not null)
        {
            Directory.CreateDirectory(dir);
            foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
            return;
        }
        ClipVocabulary.OpenAiDefault.WriteTo(dir);
        string pad = preset.PadToken ?? ClipPreTokenizer.EndOfText;
        WriteJson(Path.Combine(dir, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = ClipPreTokenizer.StartOfText,
            ["eos_token"] = ClipPreTokenizer.EndOfText,
            ["pad_token"] = pad,
            ["unk_token"] = ClipPreTokenizer.EndOfText,
        });
        WriteJson(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "CLIPTokenizer",
            ["model_max_length"] = preset.TextEncoder.MaxPositions,
            ["do_lower_case"] = true,
            ["bos_token"] = ClipPreTokenizer.StartOfText,
            ["eos_token"] = ClipPreTokenizer.EndOfText,
            ["pad_token"] = pad,
            ["unk_token"] = ClipPreTokenizer.EndOfText,
        });
    }

    private static JsonObject ModelIndex(SyntheticPreset preset, ContractVintage vintage, ModelWriteOptions options)
    {
        string className = JsonNode.Parse(preset.SchedulerConfigJson)!["_class_name"]!.GetValue<string>();
        bool legacy = vintage == ContractVintage.Legacy;
        string lib = legacy ? "diffusers" : "optimum";
        JsonArray Pair(string a, string b) => [a, b];
        var index = new JsonObject
        {
            ["_class_name"] = (legacy ? "OnnxStableDiffusion" : "ORTStableDiffusion") + (preset.IsInpainting ? "InpaintPipeline" : "Pipeline"),
            ["_diffusers_version"] = "0.30.0",
            ["feature_extractor"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
            ["safety_checker"] = new JsonArray(null, null),
            ["scheduler"] = Pair("diffusers", className),
            ["text_encoder"] = Pair(lib, legacy ? "OnnxRuntimeModel" : "ORTModelTextEncoder"),
            ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
            ["unet"] = Pair(lib, legacy ? "OnnxRuntimeModel" : "ORTModelUnet"),
            ["vae_decoder"] = Pair(lib, legacy ? "OnnxRuntimeModel" : "ORTModelVaeDecoder"),
            ["vae_encoder"] = Pair(lib, legacy ? "OnnxRuntimeModel" : "ORTModelVaeEncoder"),
        };
        foreach (var (key, value) in options.IndexEntries) index[key] = value?.DeepClone();
        return index;
    }

    private static void WriteComponentConfigs(string root, SyntheticPreset p)
    {
        var t = p.TextEncoder;
        WriteJson(Path.Combine(root, "text_encoder", "config.json"), new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModel"),
            ["model_type"] = "clip_text_model",
            ["vocab_size"] = t.VocabSize,
            ["hidden_size"] = t.Hidden,
            ["num_hidden_layers"] = t.Layers,
            ["num_attention_heads"] = t.Heads,
            ["intermediate_size"] = t.Intermediate,
            ["max_position_embeddings"] = t.MaxPositions,
            ["hidden_act"] = t.QuickGelu ? "quick_gelu" : "gelu",
        });
        var u = p.UNet;
        WriteJson(Path.Combine(root, "unet", "config.json"), new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["in_channels"] = u.InChannels,
            ["out_channels"] = u.OutChannels,
            ["sample_size"] = u.SampleSize,
            ["block_out_channels"] = new JsonArray(u.BlockOutChannels.Select(x => (JsonNode)x).ToArray()),
            ["layers_per_block"] = u.LayersPerBlock,
            ["cross_attention_dim"] = u.CrossAttentionDim,
            ["attention_head_dim"] = new JsonArray(u.AttentionHeads.Select(x => (JsonNode)x).ToArray()),
            ["use_linear_projection"] = u.UseLinearProjection,
            ["norm_num_groups"] = u.NormGroups,
            ["down_block_types"] = new JsonArray(u.CrossAttention.Select(x => (JsonNode)(x ? "CrossAttnDownBlock2D" : "DownBlock2D")).ToArray()),
            ["up_block_types"] = new JsonArray(u.CrossAttention.Reverse().Select(x => (JsonNode)(x ? "CrossAttnUpBlock2D" : "UpBlock2D")).ToArray()),
        });
        var v = p.Vae;
        foreach (var part in new[] { "vae_decoder", "vae_encoder" })
            WriteJson(Path.Combine(root, part, "config.json"), new JsonObject
            {
                ["_class_name"] = "AutoencoderKL",
                ["in_channels"] = 3,
                ["out_channels"] = 3,
                ["latent_channels"] = v.LatentChannels,
                ["block_out_channels"] = new JsonArray(v.BlockOutChannels.Select(x => (JsonNode)x).ToArray()),
                ["layers_per_block"] = v.LayersPerBlock,
                ["norm_num_groups"] = v.NormGroups,
                ["sample_size"] = p.ImageSize,
                ["scaling_factor"] = v.ScalingFactor,
            });
    }

    private static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
