namespace AsyncDiffusion.Schedulers;

/// <summary>Typed, validated reads of one scheduler class's settings: the config's value, else the class default.</summary>
public sealed class SchedulerSettings
{
    private readonly SchedulerConfig _config;
    private readonly IReadOnlyDictionary<string, object?> _defaults;

    public SchedulerSettings(SchedulerConfig config, string className)
    {
        _config = config;
        _defaults = SchedulerDefaults.For(className);
        ClassName = className;
    }

    public string ClassName { get; }
    public string Source => _config.Source;

    public int Int(string key) => (int)(double)(_config.Raw(key, _defaults) ?? throw Missing(key));
    public double Number(string key) => (double)(_config.Raw(key, _defaults) ?? throw Missing(key));
    public double? NullableNumber(string key) => (double?)_config.Raw(key, _defaults);
    public bool Bool(string key) => (bool)(_config.Raw(key, _defaults) ?? throw Missing(key));
    public double[]? NumberArray(string key) => (double[]?)_config.Raw(key, _defaults);

    /// <summary>A string setting that must be one of <paramref name="allowed"/> (null allowed only if listed as null).</summary>
    public string? Choice(string key, params string?[] allowed)
    {
        var value = (string?)_config.Raw(key, _defaults);
        if (allowed.Contains(value)) return value;
        throw new AsyncDiffusionException(
            $"Scheduler config '{Source}': {key} is {(value is null ? "null" : $"\"{value}\"")}, which {ClassName} does not support here; expected one of: {string.Join(", ", allowed.Select(a => a is null ? "null" : $"\"{a}\""))}.");
    }

    /// <summary>timestep_spacing: leading, trailing or linspace.</summary>
    public string Spacing() => Choice("timestep_spacing", TimestepSpacing.Leading, TimestepSpacing.Trailing, TimestepSpacing.Linspace)!;

    /// <summary>Which sigma schedule the use_karras/exponential/beta_sigmas flags pick (at most one may be set).</summary>
    public SigmaScheduleKind SigmaSchedule()
    {
        var set = new List<(string Key, SigmaScheduleKind Kind)>();
        foreach (var (key, kind) in new[] { ("use_karras_sigmas", SigmaScheduleKind.Karras), ("use_exponential_sigmas", SigmaScheduleKind.Exponential), ("use_beta_sigmas", SigmaScheduleKind.Beta) })
            if (_config.Raw(key, _defaults) is true) set.Add((key, kind));
        if (set.Count > 1)
            throw new AsyncDiffusionException($"Scheduler config '{Source}': {string.Join(" and ", set.Select(s => s.Key))} are all true; at most one sigma schedule can be used.");
        return set.Count == 1 ? set[0].Kind : SigmaScheduleKind.Interpolated;
    }

    /// <summary>Rejects a boolean feature this implementation does not have, instead of silently ignoring it.</summary>
    public void RequireFalse(string key)
    {
        if (_config.Raw(key, _defaults) is true)
            throw new AsyncDiffusionException($"Scheduler config '{Source}': {key} = true is not supported by AsyncDiffusion's {ClassName}; set it to false.");
    }

    public AsyncDiffusionException Invalid(string key, string problem) =>
        new($"Scheduler config '{Source}': {key} {problem}.");

    private AsyncDiffusionException Missing(string key) => new($"Scheduler config '{Source}': {key} is null; expected a value.");
}
