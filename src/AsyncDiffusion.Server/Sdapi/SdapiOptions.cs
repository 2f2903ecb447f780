using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.Sdapi;

/// <summary>
/// AUTOMATIC1111's settings (<c>/sdapi/v1/options</c>): every key a client writes is kept and
/// read back, and saved to a JSON file when the server has one, so it survives restarts. The
/// keys AsyncDiffusion uses are checked when written and take effect on later requests (and,
/// per request, from <c>override_settings</c>); the others are only remembered. Thread-safe.
/// </summary>
public sealed class SdapiOptions
{
    /// <summary>Keys that change what AsyncDiffusion does (sd_model_checkpoint is handled by the model catalogue).</summary>
    public static readonly IReadOnlyList<string> Used = [ClipSkipKey, "randn_source", "eta_ddim", "samples_format", "eta_noise_seed_delta", "eta_ancestral", "sd_vae"];

    public const string ClipSkipKey = "CLIP_stop_at_last_layers", CheckpointKey = "sd_model_checkpoint";

    // What GET shows for keys nobody wrote: A1111's names, with the values AsyncDiffusion actually uses.
    private static readonly Dictionary<string, JsonElement> Defaults = JsonDocument.Parse("""
        {
          "CLIP_stop_at_last_layers": 1, "randn_source": "CPU", "eta_ddim": 0.0, "eta_ancestral": 1.0, "eta_noise_seed_delta": 0,
          "samples_format": "png", "sd_vae": "Automatic", "send_seed": true, "send_size": true,
          "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0
        }
        """).RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());

    // JsonElements, not JsonNodes: resolving a request's settings then needs no serializer.
    private readonly Dictionary<string, JsonElement> _written = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private readonly Action<string>? _warn;

    /// <summary>The file the written keys are kept in (null: in memory only).</summary>
    public string? File { get; }

    /// <param name="file">Where to keep written keys across restarts; null keeps them in memory.</param>
    /// <param name="warn">Told about a saved file that cannot be read, or a saved value that is no longer valid (it is dropped).</param>
    public SdapiOptions(string? file, Action<string>? warn = null)
    {
        File = file;
        _warn = warn;
        if (file is null || !System.IO.File.Exists(file)) return;
        try
        {
            using var saved = JsonDocument.Parse(System.IO.File.ReadAllText(file));
            if (saved.RootElement.ValueKind != JsonValueKind.Object)
            {
                warn?.Invoke($"'{file}' does not hold a JSON object; starting with default settings.");
                return;
            }
            foreach (var property in saved.RootElement.EnumerateObject())
            {
                try
                {
                    Check(property.Name, property.Value);
                    _written[property.Name] = property.Value.Clone();
                }
                catch (BadRequestException e)
                {
                    warn?.Invoke($"'{file}': {e.Message}; the saved value is dropped.");
                }
            }
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            warn?.Invoke($"'{file}' could not be read ({e.Message}); starting with default settings.");
        }
    }

    /// <summary>The default place: <c>$XDG_CONFIG_HOME/asyncdiffusion/sdapi-options.json</c> (else <c>~/.config/…</c>).</summary>
    public static string DefaultFile
    {
        get
        {
            string? config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrWhiteSpace(config))
                config = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(config, "asyncdiffusion", "sdapi-options.json");
        }
    }

    /// <summary>Every setting as GET shows it: the defaults, overlaid with what clients wrote, overlaid with <paramref name="live"/>.</summary>
    public JsonObject Snapshot(IReadOnlyDictionary<string, JsonNode?> live)
    {
        var all = new JsonObject();
        lock (_lock)
        {
            foreach (var (key, value) in Defaults) all[key] = JsonNode.Parse(value.GetRawText());
            foreach (var (key, value) in _written) all[key] = JsonNode.Parse(value.GetRawText());
        }
        foreach (var (key, value) in live) all[key] = value?.DeepClone();
        return all;
    }

    /// <summary>
    /// Keeps every key of <paramref name="values"/> except <see cref="CheckpointKey"/> (the caller
    /// switches models), after checking the keys AsyncDiffusion uses; nothing is kept if one is invalid.
    /// </summary>
    public void Write(JsonElement values)
    {
        var accepted = new List<(string, JsonElement)>();
        foreach (var property in values.EnumerateObject())
        {
            if (property.Name == CheckpointKey) continue;
            if (property.Value.ValueKind != JsonValueKind.Null) Check(property.Name, property.Value);
            accepted.Add((property.Name, property.Value.Clone()));
        }
        if (accepted.Count == 0) return;
        lock (_lock)
        {
            foreach (var (key, value) in accepted) _written[key] = value;
            Save();
        }
    }

    /// <summary>The settings a request runs with: the stored ones, overlaid with its <c>override_settings</c> (checked).</summary>
    public SdapiSettings Resolve(JsonElement? overrides)
    {
        JsonElement Value(string key)
        {
            if (overrides is { } o && o.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null)
            {
                Check(key, v, "override_settings.");
                return v;
            }
            lock (_lock) return _written.TryGetValue(key, out var written) && written.ValueKind != JsonValueKind.Null ? written : Defaults[key];
        }
        return new SdapiSettings(
            ClipSkip: (int)ReadNumber(Value(ClipSkipKey), ClipSkipKey),
            Rng: ParseRng(Value("randn_source"), "randn_source")!.Value,
            EtaDdim: ReadNumber(Value("eta_ddim"), "eta_ddim"),
            EtaAncestral: ReadNumber(Value("eta_ancestral"), "eta_ancestral"),
            EtaNoiseSeedDelta: (long)ReadNumber(Value("eta_noise_seed_delta"), "eta_noise_seed_delta"),
            SamplesFormat: ParseFormat(Value("samples_format"), "samples_format"),
            Vae: Value("sd_vae").ToString(),
            Checkpoint: overrides is { } over && over.TryGetProperty(CheckpointKey, out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null,
            UnusedOverrides: overrides is { } all ? all.EnumerateObject().Select(p => p.Name).Where(k => k != CheckpointKey && !Used.Contains(k)).ToArray() : []);
    }

    // Values of the keys AsyncDiffusion uses must mean something; any other key may hold anything.
    private static void Check(string key, JsonElement value, string prefix = "")
    {
        switch (key)
        {
            case ClipSkipKey:
                double skip = ReadNumber(value, prefix + key);
                if (skip != Math.Floor(skip) || skip < 1 || skip > GenerationRequest.MaxClipSkip)
                    throw new BadRequestException(prefix + key, $"{prefix}{key} is {value.GetRawText()}; expected a whole number from 1 to {GenerationRequest.MaxClipSkip}");
                break;
            case "randn_source":
                ParseRng(value, prefix + key);
                break;
            case "samples_format":
                ParseFormat(value, prefix + key);
                break;
            case "eta_ddim":
                if (ReadNumber(value, prefix + key) is < 0 or > 1)
                    throw new BadRequestException(prefix + key, $"{prefix}{key} is {value.GetRawText()}; expected 0 to 1");
                break;
            case "eta_ancestral" or "eta_noise_seed_delta":
                ReadNumber(value, prefix + key);
                break;
        }
    }

    private static double ReadNumber(JsonElement value, string name) => value.ValueKind switch
    {
        JsonValueKind.Number => value.GetDouble(),
        JsonValueKind.String when double.TryParse(value.GetString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => d,
        _ => throw new BadRequestException(name, $"{name} is {value.GetRawText()}; expected a number"),
    };

    // A1111's randn_source: "GPU" (torch's CUDA Philox) and "NV" (its CPU emulation) draw the same numbers.
    private static NoiseGeneratorKind? ParseRng(JsonElement value, string name) => value.ValueKind == JsonValueKind.String
        ? value.GetString()!.Trim().ToUpperInvariant() switch
        {
            "CPU" => NoiseGeneratorKind.Torch,
            "GPU" or "NV" => NoiseGeneratorKind.Philox,
            _ => throw new BadRequestException(name, $"{name} is {value.GetRawText()}; expected CPU, GPU or NV"),
        }
        : throw new BadRequestException(name, $"{name} is {value.GetRawText()}; expected CPU, GPU or NV");

    private static ImageFormat ParseFormat(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.String && value.GetString()!.Trim().ToLowerInvariant() is "png" or "jpg" or "jpeg" or "webp"
            ? ImageCodec.ParseFormat(value.GetString()!)
            : throw new BadRequestException(name, $"{name} is {value.GetRawText()}; expected png, jpg or webp");

    // Written whole to a temporary file, then moved over the old one: a crash never leaves half a file.
    private void Save()
    {
        if (File is null) return;
        var all = new JsonObject();
        foreach (var (key, value) in _written) all[key] = JsonNode.Parse(value.GetRawText());
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(File))!);
            string temporary = $"{File}.tmp-{Environment.ProcessId}";
            System.IO.File.WriteAllText(temporary, all.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            System.IO.File.Move(temporary, File, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _warn?.Invoke($"settings could not be saved to '{File}' ({e.Message}); they apply until the server stops.");
        }
    }
}

/// <summary>The A1111 settings one request runs with (stored options overlaid with its override_settings).</summary>
public sealed record SdapiSettings(int ClipSkip, NoiseGeneratorKind Rng, double EtaDdim, double EtaAncestral, long EtaNoiseSeedDelta,
    ImageFormat SamplesFormat, string Vae, string? Checkpoint, IReadOnlyList<string> UnusedOverrides);
