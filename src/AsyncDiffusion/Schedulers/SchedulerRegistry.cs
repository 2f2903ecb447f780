namespace AsyncDiffusion.Schedulers;

/// <summary>One scheduler users can pick by name: a diffusers class plus setting overrides.</summary>
public sealed record SchedulerEntry(string Name, string ClassName, IReadOnlyDictionary<string, object?> Overrides, IReadOnlyList<string> Aliases);

/// <summary>Which schedulers a schedule type can apply to.</summary>
public enum ScheduleTypeScope
{
    /// <summary>Every scheduler (no setting changes).</summary>
    All,
    /// <summary>Schedulers whose timesteps follow <c>timestep_spacing</c>.</summary>
    TimestepSpacing,
    /// <summary>Schedulers that offer Karras, exponential and beta sigmas.</summary>
    SigmaSchedule,
}

/// <summary>
/// An AUTOMATIC1111 schedule type (<c>modules/sd_schedulers.py</c>) and the diffusers settings it
/// stands for, per the mapping diffusers documents: Karras → use_karras_sigmas, SGM Uniform and
/// Simple → "trailing" spacing, Exponential/Beta → "linspace" with exponential/beta sigmas.
/// </summary>
public sealed record ScheduleType(string Name, string Label, IReadOnlyDictionary<string, object?> Overrides, IReadOnlyList<string> Aliases, ScheduleTypeScope Scope, double DefaultRho = -1);

/// <summary>
/// Maps the names users type (AUTOMATIC1111's "Euler a", "DPM++ 2M Karras", ComfyUI's
/// "dpmpp_2m_karras", diffusers class names) to schedulers, and builds them from a model's scheduler
/// config the way diffusers' <c>X.from_config(pipe.scheduler.config)</c> does. A name may be a
/// sampler alone (its own settings: A1111's "Automatic") or a sampler followed by a schedule type.
/// </summary>
public static class SchedulerRegistry
{
    private static IReadOnlyDictionary<string, object?> Settings(params (string Key, object? Value)[] pairs) =>
        pairs.ToDictionary(p => p.Key, p => p.Value);

    private static readonly IReadOnlyDictionary<string, object?> None = Settings();
    private const string Sde = "sde-dpmsolver++";

    public static IReadOnlyList<SchedulerEntry> Entries { get; } =
    [
        new("Euler a", SchedulerDefaults.EulerAncestral, None, ["euler_a", "euler_ancestral", "k_euler_a", "k_euler_ancestral", SchedulerDefaults.EulerAncestral]),
        new("Euler", SchedulerDefaults.Euler, None, ["euler", "k_euler", SchedulerDefaults.Euler]),
        new("LMS", SchedulerDefaults.Lms, None, ["lms", "k_lms", SchedulerDefaults.Lms]),
        new("Heun", SchedulerDefaults.Heun, None, ["heun", "k_heun", SchedulerDefaults.Heun]),
        new("DPM2", SchedulerDefaults.KDpm2, None, ["dpm_2", "k_dpm_2", SchedulerDefaults.KDpm2]),
        new("DPM2 a", SchedulerDefaults.KDpm2Ancestral, None, ["dpm_2_ancestral", "k_dpm_2_a", SchedulerDefaults.KDpm2Ancestral]),
        new("DPM++ 2S a", SchedulerDefaults.DpmSolverSinglestep, None, ["k_dpmpp_2s_a", "DPM++ 2S", SchedulerDefaults.DpmSolverSinglestep]),
        new("DPM++ 3S", SchedulerDefaults.DpmSolverSinglestep, Settings(("solver_order", 3)), []),
        new("DPM++ SDE", SchedulerDefaults.DpmSolverSinglestep, Settings(("algorithm_type", Sde)), ["k_dpmpp_sde"]),
        new("DPM++ 2M", SchedulerDefaults.DpmSolverMultistep, None, ["k_dpmpp_2m", SchedulerDefaults.DpmSolverMultistep]),
        new("DPM++ 3M", SchedulerDefaults.DpmSolverMultistep, Settings(("solver_order", 3)), []),
        new("DPM++ 2M SDE", SchedulerDefaults.DpmSolverMultistep, Settings(("algorithm_type", Sde)), ["k_dpmpp_2m_sde"]),
        new("DPM++ 2M SDE Heun", SchedulerDefaults.DpmSolverMultistep, Settings(("algorithm_type", Sde), ("solver_type", "heun")), ["k_dpmpp_2m_sde_heun"]),
        new("DPM++ 3M SDE", SchedulerDefaults.DpmSolverMultistep, Settings(("algorithm_type", Sde), ("solver_order", 3)), ["k_dpmpp_3m_sde"]),
        // A1111's UniPC defaults (uni_pc_variant bh1, order 3); bh1 needs a final sigma above 0 in diffusers.
        new("UniPC", SchedulerDefaults.UniPcMultistep, Settings(("solver_type", "bh1"), ("solver_order", 3), ("final_sigmas_type", "sigma_min")), []),
        new("UniPC bh2", SchedulerDefaults.UniPcMultistep, None, [SchedulerDefaults.UniPcMultistep]),
        new("DEIS", SchedulerDefaults.DeisMultistep, None, [SchedulerDefaults.DeisMultistep]),
        new("DDIM", SchedulerDefaults.Ddim, None, [SchedulerDefaults.Ddim]),
        new("PLMS", SchedulerDefaults.Pndm, Settings(("skip_prk_steps", true)), []),
        new("PNDM", SchedulerDefaults.Pndm, None, [SchedulerDefaults.Pndm]),
        new("DDPM", SchedulerDefaults.Ddpm, None, [SchedulerDefaults.Ddpm]),
        new("LCM", SchedulerDefaults.Lcm, None, [SchedulerDefaults.Lcm]),
        new("TCD", SchedulerDefaults.Tcd, None, [SchedulerDefaults.Tcd]),
    ];

    public static IReadOnlyList<ScheduleType> ScheduleTypes { get; } =
    [
        new("automatic", "Automatic", None, [], ScheduleTypeScope.All),
        new("uniform", "Uniform", Settings(("timestep_spacing", "linspace")), [], ScheduleTypeScope.TimestepSpacing),
        new("karras", "Karras", Settings(("use_karras_sigmas", true)), ["ka"], ScheduleTypeScope.SigmaSchedule, 7.0),
        new("exponential", "Exponential", Settings(("timestep_spacing", "linspace"), ("use_exponential_sigmas", true)), ["exp"], ScheduleTypeScope.SigmaSchedule),
        new("sgm_uniform", "SGM Uniform", Settings(("timestep_spacing", "trailing")), ["SGMUniform"], ScheduleTypeScope.TimestepSpacing),
        new("simple", "Simple", Settings(("timestep_spacing", "trailing")), [], ScheduleTypeScope.TimestepSpacing),
        new("beta", "Beta", Settings(("timestep_spacing", "linspace"), ("use_beta_sigmas", true)), [], ScheduleTypeScope.SigmaSchedule),
    ];

    // Classes whose timesteps follow timestep_spacing (singlestep, LCM and TCD ignore it), and those with Karras/exponential/beta sigmas.
    private static readonly HashSet<string> FollowSpacing =
    [
        SchedulerDefaults.Ddim, SchedulerDefaults.Pndm, SchedulerDefaults.Ddpm, SchedulerDefaults.Euler, SchedulerDefaults.EulerAncestral,
        SchedulerDefaults.Lms, SchedulerDefaults.Heun, SchedulerDefaults.KDpm2, SchedulerDefaults.KDpm2Ancestral,
        SchedulerDefaults.DpmSolverMultistep, SchedulerDefaults.UniPcMultistep, SchedulerDefaults.DeisMultistep,
    ];

    private static readonly HashSet<string> OfferSigmaSchedules =
    [
        SchedulerDefaults.Euler, SchedulerDefaults.Lms, SchedulerDefaults.Heun, SchedulerDefaults.KDpm2, SchedulerDefaults.KDpm2Ancestral,
        SchedulerDefaults.DpmSolverMultistep, SchedulerDefaults.DpmSolverSinglestep, SchedulerDefaults.UniPcMultistep, SchedulerDefaults.DeisMultistep,
    ];

    private static readonly Dictionary<string, SchedulerEntry> ByKey = Index(Entries, e => e.Aliases.Prepend(e.Name));
    private static readonly Dictionary<string, ScheduleType> ScheduleByKey = Index(ScheduleTypes, s => s.Aliases.Prepend(s.Label).Prepend(s.Name));

    /// <summary>The sampler names (each works alone and with every schedule type <see cref="ScheduleTypesFor"/> lists).</summary>
    public static IEnumerable<string> Names => Entries.Select(e => e.Name);

    /// <summary>The schedule types that apply to a sampler.</summary>
    public static IReadOnlyList<ScheduleType> ScheduleTypesFor(SchedulerEntry sampler) =>
        ScheduleTypes.Where(s => s.Scope switch
        {
            ScheduleTypeScope.TimestepSpacing => FollowSpacing.Contains(sampler.ClassName),
            ScheduleTypeScope.SigmaSchedule => OfferSigmaSchedules.Contains(sampler.ClassName),
            _ => true,
        }).ToList();

    public static bool TryFindSampler(string name, out SchedulerEntry sampler) => ByKey.TryGetValue(Key(name), out sampler!);

    public static bool TryFindScheduleType(string name, out ScheduleType type) => ScheduleByKey.TryGetValue(Key(name), out type!);

    /// <summary>
    /// Splits a name into a sampler and, when the name ends with one, a schedule type ("DPM++ 2M
    /// Karras", "dpmpp_2m_sde_exponential"), without checking that the sampler takes that type.
    /// </summary>
    public static bool TryParse(string name, out SchedulerEntry sampler, out ScheduleType? type)
    {
        type = null;
        string key = Key(name);
        if (ByKey.TryGetValue(key, out sampler!)) return true;
        foreach (var (suffix, candidate) in ScheduleByKey)
        {
            if (key.Length <= suffix.Length || !key.EndsWith(suffix, StringComparison.Ordinal)) continue;
            if (!ByKey.TryGetValue(key[..^suffix.Length], out sampler!)) continue;
            type = candidate;
            return true;
        }
        return false;
    }

    /// <summary>Resolves a sampler name, alone or followed by a schedule type it takes, to one entry whose overrides combine both.</summary>
    public static bool TryResolve(string name, out SchedulerEntry entry)
    {
        entry = null!;
        if (!TryParse(name, out var sampler, out var type)) return false;
        if (type is not null && !ScheduleTypesFor(sampler).Contains(type)) return false;
        entry = type is null ? sampler : Combine(sampler, type);
        return true;
    }

    public static SchedulerEntry Resolve(string name)
    {
        if (!TryParse(name, out var sampler, out var type))
            throw new AsyncDiffusionException($"Unknown scheduler '{name}'; known samplers: {string.Join(", ", Names)}, each optionally followed by a schedule type ({string.Join(", ", ScheduleTypes.Select(s => s.Label))}); diffusers class names work too.");
        if (type is null) return sampler;
        return ScheduleTypesFor(sampler).Contains(type) ? Combine(sampler, type) : throw UnsupportedPair(sampler, type);
    }

    /// <summary>A sampler and a schedule type given separately (A1111's <c>sampler_name</c> and <c>scheduler</c>).</summary>
    public static SchedulerEntry Resolve(string samplerName, string? scheduleTypeName)
    {
        if (!TryFindSampler(samplerName, out var sampler))
            return scheduleTypeName is null ? Resolve(samplerName) : throw UnknownSampler(samplerName);
        if (scheduleTypeName is null) return sampler;
        if (!TryFindScheduleType(scheduleTypeName, out var type))
            throw new AsyncDiffusionException($"Unknown schedule type '{scheduleTypeName}'; known schedule types: {string.Join(", ", ScheduleTypes.Select(s => s.Label))}.");
        if (!ScheduleTypesFor(sampler).Contains(type)) throw UnsupportedPair(sampler, type);
        return Combine(sampler, type);
    }

    private static SchedulerEntry Combine(SchedulerEntry sampler, ScheduleType type)
    {
        if (type.Overrides.Count == 0) return sampler;
        var overrides = new Dictionary<string, object?>(sampler.Overrides);
        foreach (var (k, v) in type.Overrides) overrides[k] = v;
        return new SchedulerEntry($"{sampler.Name} {type.Label}", sampler.ClassName, overrides, []);
    }

    private static AsyncDiffusionException UnknownSampler(string name) =>
        new($"Unknown sampler '{name}'; known samplers: {string.Join(", ", Names)}.");

    private static AsyncDiffusionException UnsupportedPair(SchedulerEntry sampler, ScheduleType type) =>
        new($"Sampler '{sampler.Name}' has no schedule type '{type.Label}' (diffusers' {sampler.ClassName} does not offer it); it takes: {string.Join(", ", ScheduleTypesFor(sampler).Select(s => s.Label))}.");

    /// <summary>The scheduler the model's config names, configured as the config says.</summary>
    public static Scheduler CreateDefault(SchedulerConfig modelConfig)
    {
        string className = modelConfig.ClassName
            ?? throw new AsyncDiffusionException($"Scheduler config '{modelConfig.Source}' has no _class_name; name a scheduler ({string.Join(", ", Names)}).");
        if (!SchedulerDefaults.IsSupported(className))
            throw new AsyncDiffusionException($"Scheduler config '{modelConfig.Source}' names {className}, which AsyncDiffusion does not implement; choose one of: {string.Join(", ", Names)}.");
        return Instantiate(className, modelConfig);
    }

    /// <summary>Builds the named scheduler (a sampler, optionally with a schedule type) from a model's config.</summary>
    public static Scheduler Create(string name, SchedulerConfig modelConfig)
    {
        var entry = Resolve(name);
        return FromConfig(entry.ClassName, modelConfig, entry.Overrides);
    }

    /// <summary>
    /// diffusers' <c>X.from_config(config, **overrides)</c>: the new class gets the keys the model's
    /// file set (diffusers drops the ones it filled with defaults, <c>_use_default_values</c>) plus
    /// the overrides, and its own defaults for everything else. So Euler made from SD 1.5's PNDM
    /// file gets Euler's "linspace" spacing, and inherits "leading" only from a file that says so.
    /// </summary>
    public static Scheduler FromConfig(string className, SchedulerConfig modelConfig, IReadOnlyDictionary<string, object?> overrides)
    {
        var config = modelConfig;
        foreach (var (key, value) in overrides) config = config.With(key, value);
        return Instantiate(className, config.AsClass(className));
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
        SchedulerDefaults.DpmSolverSinglestep => new DpmSolverSinglestepScheduler(config),
        SchedulerDefaults.Lcm => new LcmScheduler(config),
        SchedulerDefaults.Lms => new LmsDiscreteScheduler(config),
        SchedulerDefaults.Ddpm => new DdpmScheduler(config),
        SchedulerDefaults.Heun => new HeunDiscreteScheduler(config),
        SchedulerDefaults.KDpm2 => new KDpm2DiscreteScheduler(config),
        SchedulerDefaults.KDpm2Ancestral => new KDpm2AncestralDiscreteScheduler(config),
        SchedulerDefaults.UniPcMultistep => new UniPcMultistepScheduler(config),
        SchedulerDefaults.DeisMultistep => new DeisMultistepScheduler(config),
        SchedulerDefaults.Tcd => new TcdScheduler(config),
        _ => throw new AsyncDiffusionException($"Scheduler class '{className}' is not supported; supported classes: {string.Join(", ", SchedulerDefaults.ClassNames)}."),
    };

    // "DPM++ 2M Karras", "dpmpp_2m_karras" and "dpm++-2m-karras" are the same key.
    private static string Key(string name) =>
        new string(name.Trim().ToLowerInvariant().Replace("++", "pp").Where(c => c is not (' ' or '_' or '-')).ToArray());

    private static Dictionary<string, T> Index<T>(IEnumerable<T> items, Func<T, IEnumerable<string>> names)
    {
        var index = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var item in items)
            foreach (var n in names(item))
                index.TryAdd(Key(n), item);
        return index;
    }
}
