using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>A checkpoint to import and how: the file or folder, a replacement VAE, a prediction override, LoRAs, the ONNX precision.</summary>
public sealed record CheckpointImport
{
    /// <summary>A single-file <c>.safetensors</c> checkpoint or a diffusers folder with safetensors weights.</summary>
    public required string Source { get; init; }

    /// <summary>A stand-alone VAE <c>.safetensors</c> to use instead of the embedded one.</summary>
    public string? Vae { get; init; }

    /// <summary>Overrides what the sidecar or the heuristics decide.</summary>
    public PredictionType? Prediction { get; init; }

    public IReadOnlyList<LoraReference> Loras { get; init; } = [];

    /// <summary>Write float16 ONNX graphs (default float32, what CPUs run fastest).</summary>
    public bool Half { get; init; }

    /// <summary>The architecture to bind instead of the detected family's standard one (custom sizes, tests).</summary>
    public SyntheticPreset? Architecture { get; init; }

    /// <summary>Whether a path is something to import (a .safetensors file or a diffusers folder of safetensors) rather than an ONNX folder.</summary>
    public static bool IsCheckpoint(string path) =>
        (File.Exists(path) && path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        || (Directory.Exists(path) && Directory.Exists(Path.Combine(path, "unet")) && !File.Exists(Path.Combine(path, "unet", "model.onnx"))
            && Directory.EnumerateFiles(Path.Combine(path, "unet")).Any(f => f.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase)));
}

/// <summary>A converted checkpoint: the diffusers-ONNX folder, what was decided and why, and what was left unused.</summary>
public sealed record ConvertedCheckpoint(string Folder, string Name, string Sha256, CheckpointKind Kind, PredictionType Prediction, bool FromCache,
    IReadOnlyList<string> Decisions, IReadOnlyList<string> Warnings, TimeSpan Elapsed);

/// <summary>
/// Turns a checkpoint into a normal diffusers-ONNX folder: open and validate the files, detect the
/// family, decide prediction type and scheduler (sidecar, then names and weights, then the
/// family's default; <see cref="CheckpointImport.Prediction"/> overrides), then build the
/// project's own SD graphs with the checkpoint's tensors bound by name, LoRAs merged. Memory stays
/// near one component's size: tensors are read from the mapped file one at a time.
/// <see cref="Resolve"/> keeps the result in the cache, keyed by the files' content hash, this
/// converter's version and every choice, so the second load converts nothing.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>Bumped when the output of a conversion changes, so older cache entries are not reused.</summary>
    public const int Version = 1;

    public const string MarkerKey = "asyncdiffusion_checkpoint";

    private static readonly ContractVintage Vintage = ContractVintage.Optimum; // float [batch] timestep: any batch can mix steps

    /// <summary>Converts into <paramref name="folder"/> (new or empty).</summary>
    public static ConvertedCheckpoint Convert(CheckpointImport import, string folder, CheckpointCache? hashes = null, IProgress<ConversionProgress>? progress = null) =>
        Run(import, hashes ?? CheckpointCache.Default, folder, progress);

    /// <summary>The cached conversion, converting first when there is none.</summary>
    public static ConvertedCheckpoint Resolve(CheckpointImport import, CheckpointCache? cache = null, IProgress<ConversionProgress>? progress = null) =>
        Run(import, cache ?? CheckpointCache.Default, null, progress);

    private static ConvertedCheckpoint Run(CheckpointImport import, CheckpointCache cache, string? target, IProgress<ConversionProgress>? progress)
    {
        var clock = Stopwatch.StartNew();
        using var checkpoint = OpenedCheckpoint.Open(import.Source);
        if (import.Vae is { } vae) checkpoint.UseVae(vae);
        var decisions = new List<string>();
        var (architecture, prediction) = Plan(checkpoint, import, decisions);
        var parameters = ModelWriter.Parameters(architecture, Vintage);
        var loras = import.Loras.Where(l => l.Weight != 0).ToList();
        using var merge = LoraMerge.Load(loras, parameters, architecture.UNet);
        decisions.AddRange(merge.Notes);

        string name = Path.GetFileNameWithoutExtension(import.Source.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        string sha = cache.Sha256(checkpoint.ContentFiles);
        var loraKeys = loras.Select(l => $"{cache.Sha256(l.Path)}:{l.Weight.ToString("R", CultureInfo.InvariantCulture)}").ToList();
        string descriptor = JsonSerializer.Serialize(new
        {
            converter = Version, sha, half = import.Half, prediction = prediction.ToString(), scheduler = architecture.SchedulerConfigJson,
            text = architecture.TextEncoder, unet = architecture.UNet, vae = architecture.Vae, pad = architecture.PadToken, loras = loraKeys,
        });
        string variant = System.Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(descriptor)))[..10];
        string folder = target ?? cache.FolderFor($"{Sanitize(name)}-{sha[..12]}-{variant}");
        if (target is null && File.Exists(Path.Combine(folder, "model_index.json")))
        {
            cache.Commit();
            return new ConvertedCheckpoint(folder, name, sha, checkpoint.Kind, prediction, true, decisions, StoredWarnings(folder), clock.Elapsed);
        }

        long total = parameters.Values.SelectMany(p => p).Sum(p => p.ElementCount);
        string family = checkpoint.Kind.Family == ModelFamily.Sd1 ? "SD 1.x" : "SD 2.x";
        var weights = new CheckpointWeights(checkpoint.Components(architecture), merge, family, total, progress);
        var warnings = new List<string>();
        var marker = new JsonObject
        {
            ["source"] = Path.GetFileName(import.Source.TrimEnd(Path.DirectorySeparatorChar)),
            ["sha256"] = sha,
            ["kind"] = checkpoint.Kind.Description,
            ["prediction_type"] = PredictionName(prediction),
            ["converter_version"] = Version,
            ["vae"] = checkpoint.VaeFile is null ? "embedded" : Path.GetFileName(checkpoint.VaeFile),
            ["loras"] = new JsonArray(loras.Select(l => (JsonNode)new JsonObject { ["name"] = l.Name, ["weight"] = l.Weight }).ToArray()),
        };
        // The warnings are known once every tensor is bound, just before model_index.json is written.
        var warningNodes = new JsonArray();
        marker["warnings"] = warningNodes;
        ModelWriter.Write(folder, architecture, weights, new ModelWriteOptions
        {
            ComponentsWritten = () =>
            {
                var left = checkpoint.Leftovers(weights.WasUsed, architecture);
                if (left.Count > 0)
                    warnings.Add($"{left.Count} tensors of the checkpoint were not used (not part of {family} as converted): {string.Join(", ", left.Take(5))}{(left.Count > 5 ? ", …" : "")}");
                warnings.AddRange(merge.Warnings);
                foreach (var w in warnings) warningNodes.Add(w);
            },
            Vintage = Vintage,
            Half = import.Half,
            TokenizerFolder = checkpoint.TokenizerFolder,
            RequireEmptyTarget = target is not null,
            IndexEntries = new Dictionary<string, JsonNode?> { [MarkerKey] = marker },
        });
        cache.Commit();
        return new ConvertedCheckpoint(folder, name, sha, checkpoint.Kind, prediction, false, decisions, warnings, clock.Elapsed);
    }

    /// <summary>Architecture, scheduler and prediction type, with a line for each decision saying why.</summary>
    private static (SyntheticPreset, PredictionType) Plan(OpenedCheckpoint checkpoint, CheckpointImport import, List<string> decisions)
    {
        var kind = checkpoint.Kind;
        decisions.Add($"model: {kind.Description}");
        SyntheticPreset architecture;
        PredictionType prediction;
        string why;
        if (checkpoint.Architecture is { } own)
        {
            architecture = import.Architecture ?? own;
            var config = SchedulerConfig.Parse(own.SchedulerConfigJson, "scheduler/scheduler_config.json");
            (prediction, why) = import.Prediction is { } p ? (p, "--prediction") : (SchedulerRegistry.PredictionOf(config), "the folder's scheduler_config.json");
            architecture = architecture with { SchedulerConfigJson = WithPrediction(own.SchedulerConfigJson, prediction) };
            decisions.Add($"prediction: {PredictionName(prediction)} ({why})");
            decisions.Add($"scheduler: {config.ClassName} (the folder's scheduler_config.json)");
        }
        else
        {
            var sidecar = Sidecar.Find(import.Source);
            bool standard = import.Architecture is null;
            architecture = import.Architecture ?? (kind.Family == ModelFamily.Sd1 ? SyntheticPreset.Sd15 : SyntheticPreset.Sd21);
            (prediction, why) = import.Prediction is { } p ? (p, "--prediction")
                : sidecar?.Prediction is { } s ? (s, $"sidecar '{Path.GetFileName(sidecar.Path)}'")
                : Guess(checkpoint, import.Source);
            decisions.Add($"prediction: {PredictionName(prediction)} ({why})");
            var unet = architecture.UNet with { InChannels = kind.InChannels };
            if (standard && kind.Family == ModelFamily.Sd2)
                unet = unet with { SampleSize = prediction == PredictionType.VPrediction && !kind.Inpainting ? 96 : 64 }; // 768-v models; 512-base and inpainting
            if (sidecar?.NumHeads is int heads)
            {
                unet = unet with { AttentionHeads = unet.BlockOutChannels.Select(_ => heads).ToArray() };
                decisions.Add($"attention heads: {heads} per block (sidecar num_heads)");
            }
            else if (sidecar?.NumHeadChannels is int width)
            {
                unet = unet with { AttentionHeads = unet.BlockOutChannels.Select(c => Math.Max(1, c / width)).ToArray() };
                decisions.Add($"attention heads: {width} channels each (sidecar num_head_channels)");
            }
            var vae = sidecar?.ScaleFactor is double scale ? architecture.Vae with { ScalingFactor = scale } : architecture.Vae;
            string schedulerJson = sidecar?.SchedulerJson
                ?? (kind.Family == ModelFamily.Sd2 && prediction == PredictionType.VPrediction ? SyntheticPreset.Sd21 : SyntheticPreset.Sd15).SchedulerConfigJson;
            string className = JsonNode.Parse(schedulerJson)?["_class_name"]?.GetValue<string>() ?? "?";
            decisions.Add($"scheduler: {className} ({(sidecar?.SchedulerJson is not null ? $"sidecar '{Path.GetFileName(sidecar.Path)}'" : $"the {(kind.Family == ModelFamily.Sd1 ? "SD 1.5" : prediction == PredictionType.VPrediction ? "SD 2.1 768-v" : "SD 2 base")} default")})");
            architecture = architecture with
            {
                UNet = unet,
                Vae = vae,
                SchedulerConfigJson = WithPrediction(schedulerJson, prediction),
                PadToken = kind.Family == ModelFamily.Sd2 ? "!" : architecture.PadToken,
            };
        }
        decisions.Add($"size: {architecture.UNet.SampleSize * architecture.Vae.ScaleFactor} px native; VAE {(checkpoint.VaeFile is null ? "embedded" : $"'{Path.GetFileName(checkpoint.VaeFile)}'")}");
        decisions.Add($"weights: {SourceTypes(checkpoint)} → {(import.Half ? "fp16" : "fp32")} ONNX");
        return (architecture, prediction);
    }

    // Without a sidecar: the file name, then (SD 2, not inpainting) ComfyUI's weight statistic, then the family default.
    private static (PredictionType, string) Guess(OpenedCheckpoint checkpoint, string source)
    {
        var kind = checkpoint.Kind;
        string stem = Path.GetFileNameWithoutExtension(source).ToLowerInvariant();
        if (new[] { "vpred", "v-pred", "v_pred", "v-prediction", "v_prediction" }.Any(stem.Contains))
            return (PredictionType.VPrediction, "the file name says v-prediction");
        if (kind.Family == ModelFamily.Sd1 || kind.Inpainting)
            return (PredictionType.Epsilon, kind.Inpainting ? "inpainting models are epsilon" : "SD 1.x models are epsilon");
        if (stem.Contains("768")) return (PredictionType.VPrediction, "SD 2.x with 768 in the file name");
        if (stem.Contains("512") || stem.Contains("base")) return (PredictionType.Epsilon, "SD 2.x with 512/base in the file name");
        const string probe = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias";
        if (checkpoint.SingleFile is { } file && file.Tensors.TryGetValue(probe, out var info))
        {
            var v = file.ReadFloats(info);
            double mean = v.Average(x => (double)x);
            double std = Math.Sqrt(v.Average(x => (x - mean) * (x - mean)));
            return std > 0.09
                ? (PredictionType.VPrediction, $"weight statistic: std of output_blocks.11's norm1.bias {std:F3} > 0.09 (ComfyUI's rule)")
                : (PredictionType.Epsilon, $"weight statistic: std of output_blocks.11's norm1.bias {std:F3} ≤ 0.09 (ComfyUI's rule)");
        }
        return (PredictionType.VPrediction, "the SD 2.x default for .safetensors files, as diffusers");
    }

    private static string SourceTypes(OpenedCheckpoint checkpoint) =>
        string.Join(", ", checkpoint.Files.SelectMany(f => f.Tensors.Values).GroupBy(t => t.Type).OrderByDescending(g => g.Count())
            .Select(g => $"{SafeTensors.DTypeName(g.Key)} ×{g.Count()}"));

    private static string WithPrediction(string schedulerJson, PredictionType prediction)
    {
        var node = JsonNode.Parse(schedulerJson)!.AsObject();
        node["prediction_type"] = PredictionName(prediction);
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public static string PredictionName(PredictionType p) => p switch
    {
        PredictionType.VPrediction => "v_prediction",
        PredictionType.Sample => "sample",
        _ => "epsilon",
    };

    /// <summary>What a converted folder was made from (file, hash, kind, prediction, LoRAs), or null for any other folder.</summary>
    public static string? Origin(string folder)
    {
        try
        {
            var marker = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model_index.json")))?[MarkerKey];
            if (marker is null) return null;
            var loras = marker["loras"]?.AsArray().Select(l => $"{l?["name"]} × {l?["weight"]}").ToList() ?? [];
            return $"{marker["source"]} (sha256 {marker["sha256"]?.GetValue<string>()[..12]}…), {marker["kind"]}, {marker["prediction_type"]}, VAE {marker["vae"]}" +
                (loras.Count > 0 ? $", LoRAs {string.Join(", ", loras)}" : "") + $", converter v{marker["converter_version"]}";
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException)
        {
            return null;
        }
    }

    private static List<string> StoredWarnings(string folder)
    {
        try
        {
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model_index.json")));
            return index?[MarkerKey]?["warnings"]?.AsArray().Select(w => w?.GetValue<string>() ?? "").Where(w => w.Length > 0).ToList() ?? [];
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException)
        {
            return [];
        }
    }

    private static string Sanitize(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').Take(60).ToArray();
        return chars.Length == 0 ? "model" : new string(chars);
    }
}
