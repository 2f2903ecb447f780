using System.Globalization;
using System.Text;
using System.Text.Json;

namespace AsyncDiffusion.Schedulers;

/// <summary>
/// A diffusers scheduler configuration (<c>scheduler/scheduler_config.json</c>): known keys are
/// type-checked when read, unknown keys are kept and ignored. Values are bool, double, string,
/// double[] or null. Immutable; <see cref="With"/> makes a changed copy for user overrides.
/// </summary>
public sealed class SchedulerConfig
{
    private enum Kind { Bool, Int, Number, NullableNumber, String, NullableString, NumberArrayOrNull }

    // Every key a supported scheduler reads, with its JSON type.
    private static readonly Dictionary<string, Kind> Schema = new(StringComparer.Ordinal)
    {
        ["num_train_timesteps"] = Kind.Int,
        ["beta_start"] = Kind.Number,
        ["beta_end"] = Kind.Number,
        ["beta_schedule"] = Kind.String,
        ["trained_betas"] = Kind.NumberArrayOrNull,
        ["prediction_type"] = Kind.String,
        ["clip_sample"] = Kind.Bool,
        ["clip_sample_range"] = Kind.Number,
        ["set_alpha_to_one"] = Kind.Bool,
        ["steps_offset"] = Kind.Int,
        ["timestep_spacing"] = Kind.String,
        ["skip_prk_steps"] = Kind.Bool,
        ["use_karras_sigmas"] = Kind.Bool,
        ["use_exponential_sigmas"] = Kind.Bool,
        ["use_beta_sigmas"] = Kind.Bool,
        ["sigma_min"] = Kind.NullableNumber,
        ["sigma_max"] = Kind.NullableNumber,
        ["final_sigmas_type"] = Kind.String,
        ["interpolation_type"] = Kind.String,
        ["timestep_type"] = Kind.String,
        ["solver_order"] = Kind.Int,
        ["algorithm_type"] = Kind.String,
        ["solver_type"] = Kind.String,
        ["lower_order_final"] = Kind.Bool,
        ["euler_at_final"] = Kind.Bool,
        ["lambda_min_clipped"] = Kind.Number,
        ["thresholding"] = Kind.Bool,
        ["original_inference_steps"] = Kind.Int,
        ["timestep_scaling"] = Kind.Number,
        ["variance_type"] = Kind.NullableString,
        ["rescale_betas_zero_snr"] = Kind.Bool,
        ["predict_x0"] = Kind.Bool,
        ["disable_corrector"] = Kind.NumberArrayOrNull,
        ["use_lu_lambdas"] = Kind.Bool,
        ["use_flow_sigmas"] = Kind.Bool,
        ["use_dynamic_shifting"] = Kind.Bool,
    };

    private readonly Dictionary<string, object?> _values;

    /// <summary>Where the values came from (a file path, or a description), for error messages.</summary>
    public string Source { get; }

    /// <summary>The diffusers class named by <c>_class_name</c>, if any.</summary>
    public string? ClassName { get; }

    private SchedulerConfig(string source, string? className, Dictionary<string, object?> values)
    {
        Source = source;
        ClassName = className;
        _values = values;
    }

    public IEnumerable<string> Keys => _values.Keys;

    /// <summary>An empty configuration for a class: every value is that class's default.</summary>
    public static SchedulerConfig Empty(string className, string source = "defaults") => new(source, className, new());

    public static SchedulerConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new AsyncDiffusionException($"Scheduler config '{path}' not found; expected a diffusers scheduler_config.json.");
        return Parse(File.ReadAllText(path, Encoding.UTF8), path);
    }

    public static SchedulerConfig Parse(string json, string source)
    {
        JsonDocument doc;
        try
        {
            // Python's json module writes Infinity/-Infinity/NaN (e.g. lambda_min_clipped).
            doc = JsonDocument.Parse(QuoteNonFiniteLiterals(json), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new AsyncDiffusionException($"Scheduler config '{source}' is not valid JSON ({e.Message}).");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new AsyncDiffusionException($"Scheduler config '{source}' holds a JSON {doc.RootElement.ValueKind}; expected an object of scheduler settings.");
            string? className = null;
            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "_class_name")
                {
                    className = p.Value.ValueKind == JsonValueKind.String
                        ? p.Value.GetString()
                        : throw new AsyncDiffusionException($"Scheduler config '{source}': _class_name is {p.Value.GetRawText()}; expected a class name string such as \"PNDMScheduler\".");
                    continue;
                }
                if (!Schema.TryGetValue(p.Name, out var kind)) continue; // unknown keys are ignored, as diffusers does
                values[p.Name] = Convert(p.Name, p.Value, kind, source);
            }
            return new SchedulerConfig(source, className, values);
        }
    }

    /// <summary>A copy with one value replaced (a user override); the value is type-checked.</summary>
    public SchedulerConfig With(string key, object? value)
    {
        if (!Schema.TryGetValue(key, out var kind))
            throw new AsyncDiffusionException($"Unknown scheduler setting '{key}'; known settings: {string.Join(", ", Schema.Keys.Order(StringComparer.Ordinal))}.");
        var json = JsonSerializer.SerializeToElement(value);
        var copy = new Dictionary<string, object?>(_values, StringComparer.Ordinal) { [key] = Convert(key, json, kind, "override") };
        return new SchedulerConfig(Source, ClassName, copy);
    }

    /// <summary>A copy with a setting given as text (<c>key=value</c> from a command line): true/false, numbers, strings, null.</summary>
    public SchedulerConfig WithText(string key, string text)
    {
        object? value = text.Trim() switch
        {
            "true" or "True" => true,
            "false" or "False" => false,
            "null" or "None" => null,
            var t when double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            var t => t,
        };
        return With(key, value);
    }

    /// <summary>The same values, labelled as belonging to another class (diffusers' <c>from_config</c>).</summary>
    public SchedulerConfig AsClass(string className) => new(Source, className, _values);

    public bool Contains(string key) => _values.ContainsKey(key);

    internal object? Raw(string key, IReadOnlyDictionary<string, object?> defaults) =>
        _values.TryGetValue(key, out var v) ? v : defaults.TryGetValue(key, out var d) ? d : null;

    private static object? Convert(string key, JsonElement v, Kind kind, string source)
    {
        string Fail(string expected) =>
            throw new AsyncDiffusionException($"Scheduler config '{source}': {key} is {v.GetRawText()}; expected {expected}.");

        switch (kind)
        {
            case Kind.Bool:
                return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => Fail("true or false") };
            case Kind.Int:
                if (TryNumber(v, out double i) && i == Math.Floor(i) && Math.Abs(i) < int.MaxValue) return i;
                return Fail("an integer");
            case Kind.Number:
                return TryNumber(v, out double d) ? d : Fail("a number");
            case Kind.NullableNumber:
                if (v.ValueKind == JsonValueKind.Null) return null;
                return TryNumber(v, out double n) ? n : Fail("a number or null");
            case Kind.String:
                return v.ValueKind == JsonValueKind.String ? v.GetString() : Fail("a string");
            case Kind.NullableString:
                if (v.ValueKind == JsonValueKind.Null) return null;
                return v.ValueKind == JsonValueKind.String ? v.GetString() : Fail("a string or null");
            case Kind.NumberArrayOrNull:
                if (v.ValueKind == JsonValueKind.Null) return null;
                if (v.ValueKind != JsonValueKind.Array) return Fail("an array of numbers or null");
                var list = new List<double>();
                foreach (var e in v.EnumerateArray())
                {
                    if (!TryNumber(e, out double x)) return Fail("an array of numbers or null");
                    list.Add(x);
                }
                return list.ToArray();
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    private static bool TryNumber(JsonElement v, out double value)
    {
        value = 0;
        if (v.ValueKind == JsonValueKind.Number) return v.TryGetDouble(out value);
        if (v.ValueKind != JsonValueKind.String) return false;
        switch (v.GetString()!.Trim().ToLowerInvariant())
        {
            case "-inf" or "-infinity": value = double.NegativeInfinity; return true;
            case "inf" or "infinity" or "+inf": value = double.PositiveInfinity; return true;
            default: return false;
        }
    }

    // Turns bare Infinity / -Infinity / NaN tokens (outside strings) into strings.
    private static string QuoteNonFiniteLiterals(string json)
    {
        if (!json.Contains("Infinity") && !json.Contains("NaN")) return json;
        var sb = new StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            foreach (var lit in new[] { "-Infinity", "Infinity", "NaN" })
            {
                if (string.CompareOrdinal(json, i, lit, 0, lit.Length) == 0)
                {
                    sb.Append('"').Append(lit).Append('"');
                    i += lit.Length - 1;
                    goto next;
                }
            }
            sb.Append(c);
        next:;
        }
        return sb.ToString();
    }
}
