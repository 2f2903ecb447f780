using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>What <see cref="SyntheticModelWriter"/> wrote.</summary>
public sealed record SyntheticModelSummary(string Folder, SyntheticPreset Preset, ContractVintage Vintage, bool Half, ulong Seed,
    IReadOnlyDictionary<string, long> Parameters, long Bytes, TimeSpan Elapsed);

/// <summary>
/// Writes a complete diffusers-ONNX model folder (model_index.json, scheduler, tokenizer, text
/// encoder, UNet with external data, VAE decoder and encoder, per-component configs) for a
/// preset, with seeded random weights. Same inputs, byte-identical files. The folder appears
/// only when complete: it is written beside the target and moved into place.
/// </summary>
public static class SyntheticModelWriter
{
    public const string MarkerKey = "asyncdiffusion_synthetic";

    public static SyntheticModelSummary Write(string folder, SyntheticPreset preset, ContractVintage? vintage = null, bool half = false, ulong seed = 0)
    {
        vintage ??= ContractVintage.Optimum124;
        var clock = Stopwatch.StartNew();
        var parameters = new Dictionary<string, long>();
        folder = WriteAtomically(folder, staging =>
        {
            var weights = new SeededWeights(seed);
            parameters["text_encoder"] = Component(staging, "text_encoder", null, weights, half, g => ClipTextGraph.Build(g, preset.TextEncoder, vintage));
            parameters["unet"] = Component(staging, "unet", vintage.ExternalDataName, weights, half, g => UNetGraph.Build(g, preset.UNet, vintage));
            parameters["vae_decoder"] = Component(staging, "vae_decoder", null, weights, half, g => AutoencoderGraph.BuildDecoder(g, preset.Vae));
            parameters["vae_encoder"] = Component(staging, "vae_encoder", null, weights, half, g => AutoencoderGraph.BuildEncoder(g, preset.Vae, vintage.EncoderSamplesInGraph));

            WriteTokenizer(Path.Combine(staging, "tokenizer"), preset.PadToken, preset.TextEncoder.MaxPositions);
            WriteScheduler(staging, preset.SchedulerConfigJson);
            WriteJson(Path.Combine(staging, "model_index.json"), ModelIndex(preset, vintage, half, seed));
            if (vintage.WriteComponentConfigs) WriteComponentConfigs(staging, preset);
        });
        long bytes = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return new SyntheticModelSummary(folder, preset, vintage, half, seed, parameters, bytes, clock.Elapsed);
    }

    /// <summary>
    /// Fills a staging folder beside <paramref name="folder"/> and moves it into place, so the
    /// folder appears only when complete. Returns the folder's full path.
    /// </summary>
    internal static string WriteAtomically(string folder, Action<string> fill)
    {
        folder = Path.GetFullPath(folder);
        if (File.Exists(folder) || (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any()))
            throw new AsyncDiffusionException($"'{folder}' already exists and is not empty; choose a new folder for the model.");
        string staging = folder.TrimEnd(Path.DirectorySeparatorChar) + $".partial-{Environment.ProcessId}";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
            if (Directory.Exists(folder)) Directory.Delete(folder);
            Directory.Move(staging, folder);
        }
        catch
        {
            try { Directory.Delete(staging, recursive: true); } catch (IOException) { }
            throw;
        }
        return folder;
    }

    /// <summary>The UNet graph of a preset without weight data: enough for FLOP counting and parameter counts.</summary>
    public static global::Onnx.GraphProto UNetShapes(SyntheticPreset preset, ContractVintage? vintage = null)
    {
        using var g = new OnnxGraphBuilder("unet", new SeededWeights(0), half: false, shapesOnly: true);
        UNetGraph.Build(g, preset.UNet, vintage ?? ContractVintage.Optimum124);
        return g.Build("asyncdiffusion-synthetic").Graph;
    }

    internal static long Component(string root, string name, string? externalData, SeededWeights weights, bool half, Action<OnnxGraphBuilder> build,
        TrainedWeights? trained = null)
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        using var g = new OnnxGraphBuilder(name, weights, half, externalData is null ? null : Path.Combine(dir, externalData), trained: trained);
        build(g);
        g.Save(Path.Combine(dir, "model.onnx"), "asyncdiffusion-synthetic");
        return g.ParameterCount;
    }

    internal static void WriteScheduler(string root, string configJson)
    {
        Directory.CreateDirectory(Path.Combine(root, "scheduler"));
        File.WriteAllText(Path.Combine(root, "scheduler", "scheduler_config.json"), configJson.Trim() + "\n");
    }

    internal static void WriteTokenizer(string dir, string? padToken, int maxLength)
    {
        ClipVocabulary.OpenAiDefault.WriteTo(dir);
        string pad = padToken ?? ClipPreTokenizer.EndOfText;
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
            ["model_max_length"] = maxLength,
            ["do_lower_case"] = true,
            ["bos_token"] = ClipPreTokenizer.StartOfText,
            ["eos_token"] = ClipPreTokenizer.EndOfText,
            ["pad_token"] = pad,
            ["unk_token"] = ClipPreTokenizer.EndOfText,
        });
    }

    private static JsonObject ModelIndex(SyntheticPreset preset, ContractVintage vintage, bool half, ulong seed) =>
        ModelIndex(preset.SchedulerConfigJson, vintage, MarkerKey, new JsonObject
        {
            ["preset"] = preset.Name,
            ["vintage"] = vintage.Name,
            ["precision"] = half ? "fp16" : "fp32",
            ["seed"] = seed,
            ["note"] = "Synthetic model written by AsyncDiffusion: real architecture, random weights. It makes abstract images.",
        });

    /// <summary>model_index.json for an ONNX pipeline of the vintage, with AsyncDiffusion's own note under <paramref name="markerKey"/>.</summary>
    internal static JsonObject ModelIndex(string schedulerConfigJson, ContractVintage vintage, string markerKey, JsonObject marker)
    {
        string className = JsonNode.Parse(schedulerConfigJson)!["_class_name"]!.GetValue<string>();
        bool legacy = vintage == ContractVintage.Legacy;
        string lib = legacy ? "diffusers" : "optimum";
        JsonArray Pair(string a, string b) => [a, b];
        return new JsonObject
        {
            ["_class_name"] = legacy ? "OnnxStableDiffusionPipeline" : "ORTStableDiffusionPipeline",
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
            [markerKey] = marker,
        };
    }

    private static void WriteComponentConfigs(string root, SyntheticPreset p)
    {
        WriteTextAndUNetConfigs(root, p.TextEncoder, p.UNet);
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

    internal static void WriteTextAndUNetConfigs(string root, ClipTextConfig t, UNetConfig u)
    {
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
    }

    internal static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
