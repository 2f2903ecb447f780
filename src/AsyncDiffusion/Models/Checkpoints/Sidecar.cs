using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>
/// A config file beside a single-file checkpoint, with the checkpoint's name: <c>NAME.yaml</c> (the
/// LDM inference config A1111 and ComfyUI read: <c>parameterization: "v"</c>, <c>num_heads</c>,
/// <c>num_head_channels</c>, <c>scale_factor</c>) or <c>NAME.json</c> (a diffusers scheduler config,
/// or just <c>{"prediction_type": "v_prediction"}</c>). What it says wins over guessing from names
/// and weights.
/// </summary>
public sealed partial record Sidecar(string Path, PredictionType? Prediction, int? NumHeads, int? NumHeadChannels, double? ScaleFactor, string? SchedulerJson)
{
    public static Sidecar? Find(string checkpoint)
    {
        string stem = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(checkpoint))!, System.IO.Path.GetFileNameWithoutExtension(checkpoint));
        foreach (var ext in new[] { ".yaml", ".yml" })
            if (File.Exists(stem + ext)) return FromYaml(stem + ext, File.ReadAllText(stem + ext));
        return File.Exists(stem + ".json") ? FromJson(stem + ".json", File.ReadAllText(stem + ".json")) : null;
    }

    // LDM configs are simple YAML: the few keys that matter appear once, as `key: value` lines.
    internal static Sidecar FromYaml(string path, string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var m = YamlLine().Match(raw);
            if (m.Success) values.TryAdd(m.Groups[1].Value, m.Groups[2].Value.Trim().Trim('"', '\''));
        }
        PredictionType? prediction = values.TryGetValue("parameterization", out var p) ? p switch
        {
            "v" => PredictionType.VPrediction,
            "eps" => PredictionType.Epsilon,
            "x0" => PredictionType.Sample,
            _ => throw new ModelFolderException($"'{path}': parameterization '{p}' is not one of eps, v, x0."),
        } : PredictionType.Epsilon; // LDM's default when the key is absent
        int? Positive(string key) => values.TryGetValue(key, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : null;
        double? scale = values.TryGetValue("scale_factor", out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) ? f : null;
        return new Sidecar(path, prediction, Positive("num_heads"), Positive("num_head_channels"), scale, null);
    }

    internal static Sidecar FromJson(string path, string text)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(text);
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{path}' is not valid JSON ({e.Message}); expected a diffusers scheduler config or {{\"prediction_type\": \"epsilon\" | \"v_prediction\"}}.");
        }
        if (root.ValueKind != JsonValueKind.Object) throw new ModelFolderException($"'{path}' holds a JSON {root.ValueKind}; expected an object.");
        PredictionType? prediction = root.TryGetProperty("prediction_type", out var p) ? ParsePrediction(p.GetString() ?? "", $"'{path}': prediction_type") : null;
        string? scheduler = root.TryGetProperty("_class_name", out _) ? text : null;
        return new Sidecar(path, prediction, null, null, null, scheduler);
    }

    /// <summary>epsilon / eps, v / v_prediction, sample / x0 (as users and configs spell them).</summary>
    public static PredictionType ParsePrediction(string text, string what) => text.Trim().ToLowerInvariant() switch
    {
        "epsilon" or "eps" => PredictionType.Epsilon,
        "v" or "v_prediction" or "v-prediction" or "vpred" => PredictionType.VPrediction,
        "sample" or "x0" => PredictionType.Sample,
        _ => throw new AsyncDiffusionException($"{what} '{text}' is not a prediction type; expected epsilon or v (v_prediction)."),
    };

    [GeneratedRegex(@"^\s*([A-Za-z_]\w*)\s*:\s*([^#\r]*)")]
    private static partial Regex YamlLine();
}
