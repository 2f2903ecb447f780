namespace AsyncDiffusion.Schedulers;

/// <summary>One scheduler users can pick by name: a diffusers class plus setting overrides.</summary>
public sealed record SchedulerEntry(string Name, string ClassName, IReadOnlyDictionary<string, object?> Overrides, IReadOnlyList<string> Aliases);

/// <summary>
/// Maps the names users type (AUTOMATIC1111's "Euler a", "DPM++ 2M Karras", ComfyUI's
/// "dpmpp_2m", diffusers class names) to schedulers, and builds them from a model's scheduler
/// config the way diffusers' <c>X.from_config(pipe.scheduler.config)</c> does.
/// </summary>
public static class SchedulerRegistry
{
    private static readonly Dictionary<string, object?> Karras = new() { ["use_karras_sigmas"] = true };
    private static readonly Dictionary<string, object?> None = new();

    public static IReadOnlyList<SchedulerEntry> Entries { get; } =
    [
        new("Euler a", SchedulerDefaults.EulerAncestral, None, ["euler_a", "euler_ancestral", "k_euler_a", "EulerAncestralDiscreteScheduler"]),
        new("Euler", SchedulerDefaults.Euler, None, ["euler", "k_euler", "EulerDiscreteScheduler"]),
        new("Euler Karras", SchedulerDefaults.Euler, Karras, ["euler_karras"]),
        new("DPM++ 2M", SchedulerDefaults.DpmSolverMultistep, None, ["dpmpp_2m", "dpm++_2m", "DPMSolverMultistepScheduler"]),
        new("DPM++ 2M Karras", SchedulerDefaults.DpmSolverMultistep, Karras, ["dpmpp_2m_karras", "k_dpmpp_2m"]),
        new("LMS", SchedulerDefaults.Lms, None, ["lms", "k_lms", "LMSDiscreteScheduler"]),
        new("LMS Karras", SchedulerDefaults.Lms, Karras, ["lms_karras"]),
        new("DDIM", SchedulerDefaults.Ddim, None, ["ddim", "DDIMScheduler"]),
        new("PNDM", SchedulerDefaults.Pndm, None, ["pndm", "PNDMScheduler"]),
        new("PLMS", SchedulerDefaults.Pndm, new Dictionary<string, object?> { ["skip_prk_steps"] = true }, ["plms"]),
        new("DDPM", SchedulerDefaults.Ddpm, None, ["ddpm", "DDPMScheduler"]),
        new("LCM", SchedulerDefaults.Lcm, None, ["lcm", "LCMScheduler"]),
    ];

    private static readonly Dictionary<string, SchedulerEntry> ByKey = BuildIndex();

    public static IEnumerable<string> Names => Entries.Select(e => e.Name);

    public static bool TryResolve(string name, out SchedulerEntry entry) => ByKey.TryGetValue(Key(name), out entry!);

    public static SchedulerEntry Resolve(string name) =>
        TryResolve(name, out var entry)
            ? entry
            : throw new AsyncDiffusionException($"Unknown scheduler '{name}'; known schedulers: {string.Join(", ", Names)} (diffusers class names work too).");

    /// <summary>The scheduler the model's config names, configured as the config says.</summary>
    public static Scheduler CreateDefault(SchedulerConfig modelConfig)
    {
        string className = modelConfig.ClassName
            ?? throw new AsyncDiffusionException($"Scheduler config '{modelConfig.Source}' has no _class_name; name a scheduler ({string.Join(", ", Names)}).");
        if (!SchedulerDefaults.IsSupported(className))
            throw new AsyncDiffusionException($"Scheduler config '{modelConfig.Source}' names {className}, which AsyncDiffusion does not implement; choose one of: {string.Join(", ", Names)}.");
        return Create(className, modelConfig);
    }

    /// <summary>
    /// Builds the named scheduler from a model's config: the config is first completed with its
    /// own class's defaults (so SD 1.5's PNDM config hands "leading" spacing on), then the
    /// entry's overrides apply, then the new class's defaults fill whatever is still missing.
    /// </summary>
    public static Scheduler Create(string name, SchedulerConfig modelConfig)
    {
        var entry = Resolve(name);
        var config = modelConfig.ClassName is { } own && SchedulerDefaults.IsSupported(own) ? modelConfig.WithDefaultsOf(own) : modelConfig;
        foreach (var (key, value) in entry.Overrides) config = config.With(key, value);
        return Instantiate(entry.ClassName, config.AsClass(entry.ClassName));
    }

    /// <summary>The prediction type a model's scheduler config declares (epsilon when absent).</summary>
    public static PredictionType PredictionOf(SchedulerConfig config) =>
        new SchedulerSettings(config, SchedulerDefaults.Ddim).Choice("prediction_type", "epsilon", "v_prediction", "sample") switch
        {
            "v_prediction" => PredictionType.VPrediction,
            "sample" => PredictionType.Sample,
            _ => PredictionType.Epsilon,
        };

    /// <summary>Builds a diffusers class directly from a (complete or partial) config.</summary>
    public static Scheduler Instantiate(string className, SchedulerConfig config) => className switch
    {
        SchedulerDefaults.Ddim => new DdimScheduler(config),
        SchedulerDefaults.Pndm => new PndmScheduler(config),
        SchedulerDefaults.Euler => new EulerDiscreteScheduler(config),
        SchedulerDefaults.EulerAncestral => new EulerAncestralDiscreteScheduler(config),
        SchedulerDefaults.DpmSolverMultistep => new DpmSolverMultistepScheduler(config),
        SchedulerDefaults.Lcm => new LcmScheduler(config),
        SchedulerDefaults.Lms => new LmsDiscreteScheduler(config),
        SchedulerDefaults.Ddpm => new DdpmScheduler(config),
        _ => throw new AsyncDiffusionException($"Scheduler class '{className}' is not supported; supported classes: {string.Join(", ", SchedulerDefaults.ClassNames)}."),
    };

    // "DPM++ 2M Karras", "dpmpp_2m_karras" and "dpm++-2m-karras" are the same key.
    private static string Key(string name) =>
        new string(name.Trim().ToLowerInvariant().Replace("++", "pp").Where(c => c is not (' ' or '_' or '-')).ToArray());

    private static Dictionary<string, SchedulerEntry> BuildIndex()
    {
        var index = new Dictionary<string, SchedulerEntry>(StringComparer.Ordinal);
        foreach (var e in Entries)
            foreach (var n in e.Aliases.Prepend(e.Name))
                index.TryAdd(Key(n), e);
        return index;
    }
}
