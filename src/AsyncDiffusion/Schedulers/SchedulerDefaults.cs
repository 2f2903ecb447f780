namespace AsyncDiffusion.Schedulers;

/// <summary>
/// Each diffusers scheduler class's <c>__init__</c> defaults: what a class uses for every key its
/// config does not set. <c>X.from_config(other.config)</c> hands on only the keys the loaded file
/// set (diffusers drops the ones it filled with defaults, <c>_use_default_values</c>), so a
/// scheduler switched to runs with its own defaults for the rest: Euler from SD 1.5's PNDM file
/// gets Euler's "linspace" spacing, not PNDM's "leading".
/// </summary>
public static class SchedulerDefaults
{
    public const string Ddim = "DDIMScheduler";
    public const string Pndm = "PNDMScheduler";
    public const string Euler = "EulerDiscreteScheduler";
    public const string EulerAncestral = "EulerAncestralDiscreteScheduler";
    public const string DpmSolverMultistep = "DPMSolverMultistepScheduler";
    public const string Lcm = "LCMScheduler";
    public const string Lms = "LMSDiscreteScheduler";
    public const string Ddpm = "DDPMScheduler";
    public const string Heun = "HeunDiscreteScheduler";
    public const string KDpm2 = "KDPM2DiscreteScheduler";
    public const string KDpm2Ancestral = "KDPM2AncestralDiscreteScheduler";
    public const string DpmSolverSinglestep = "DPMSolverSinglestepScheduler";
    public const string UniPcMultistep = "UniPCMultistepScheduler";
    public const string DeisMultistep = "DEISMultistepScheduler";
    public const string Tcd = "TCDScheduler";

    private static Dictionary<string, object?> Common(string spacing, double betaStart = 0.0001, double betaEnd = 0.02, string schedule = "linear") => new()
    {
        ["num_train_timesteps"] = 1000.0,
        ["beta_start"] = betaStart,
        ["beta_end"] = betaEnd,
        ["beta_schedule"] = schedule,
        ["trained_betas"] = null,
        ["prediction_type"] = "epsilon",
        ["timestep_spacing"] = spacing,
        ["steps_offset"] = 0.0,
    };

    private static readonly Dictionary<string, IReadOnlyDictionary<string, object?>> ByClass = new(StringComparer.Ordinal)
    {
        [Ddim] = With(Common("leading"), ("clip_sample", true), ("clip_sample_range", 1.0), ("set_alpha_to_one", true),
            ("thresholding", false), ("rescale_betas_zero_snr", false)),
        [Pndm] = With(Common("leading"), ("skip_prk_steps", false), ("set_alpha_to_one", false)),
        [Euler] = With(Common("linspace"), ("interpolation_type", "linear"), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false), ("sigma_min", null), ("sigma_max", null), ("timestep_type", "discrete"),
            ("rescale_betas_zero_snr", false), ("final_sigmas_type", "zero")),
        [EulerAncestral] = With(Common("linspace"), ("rescale_betas_zero_snr", false)),
        [DpmSolverMultistep] = With(Common("linspace"), ("solver_order", 2.0), ("thresholding", false), ("algorithm_type", "dpmsolver++"),
            ("solver_type", "midpoint"), ("lower_order_final", true), ("euler_at_final", false), ("use_karras_sigmas", false),
            ("use_exponential_sigmas", false), ("use_beta_sigmas", false), ("final_sigmas_type", "zero"),
            ("lambda_min_clipped", double.NegativeInfinity), ("variance_type", null), ("rescale_betas_zero_snr", false),
            ("use_lu_lambdas", false), ("use_flow_sigmas", false), ("use_dynamic_shifting", false)),
        [DpmSolverSinglestep] = With(Common("linspace"), ("solver_order", 2.0), ("thresholding", false), ("algorithm_type", "dpmsolver++"),
            ("solver_type", "midpoint"), ("lower_order_final", false), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false), ("use_flow_sigmas", false), ("final_sigmas_type", "zero"),
            ("lambda_min_clipped", double.NegativeInfinity), ("variance_type", null), ("use_dynamic_shifting", false)),
        [UniPcMultistep] = With(Common("linspace"), ("solver_order", 2.0), ("thresholding", false), ("predict_x0", true),
            ("solver_type", "bh2"), ("lower_order_final", true), ("disable_corrector", Array.Empty<double>()), ("use_karras_sigmas", false),
            ("use_exponential_sigmas", false), ("use_beta_sigmas", false), ("use_flow_sigmas", false), ("final_sigmas_type", "zero"),
            ("rescale_betas_zero_snr", false), ("use_dynamic_shifting", false), ("sigma_min", null), ("sigma_max", null)),
        [DeisMultistep] = With(Common("linspace"), ("solver_order", 2.0), ("thresholding", false), ("algorithm_type", "deis"),
            ("solver_type", "logrho"), ("lower_order_final", true), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false), ("use_flow_sigmas", false), ("use_dynamic_shifting", false)),
        [Heun] = With(Common("linspace", 0.00085, 0.012), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false), ("clip_sample", false), ("clip_sample_range", 1.0)),
        [KDpm2] = With(Common("linspace", 0.00085, 0.012), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false)),
        [KDpm2Ancestral] = With(Common("linspace", 0.00085, 0.012), ("use_karras_sigmas", false), ("use_exponential_sigmas", false),
            ("use_beta_sigmas", false)),
        [Tcd] = With(Common("leading", 0.00085, 0.012, "scaled_linear"), ("original_inference_steps", 50.0), ("clip_sample", false),
            ("clip_sample_range", 1.0), ("set_alpha_to_one", true), ("thresholding", false), ("timestep_scaling", 10.0),
            ("rescale_betas_zero_snr", false)),
        [Lcm] = With(Common("leading", 0.00085, 0.012, "scaled_linear"), ("original_inference_steps", 50.0), ("clip_sample", false),
            ("clip_sample_range", 1.0), ("set_alpha_to_one", true), ("thresholding", false), ("timestep_scaling", 10.0),
            ("rescale_betas_zero_snr", false)),
        [Lms] = With(Common("linspace"), ("use_karras_sigmas", false), ("use_exponential_sigmas", false), ("use_beta_sigmas", false)),
        [Ddpm] = With(Common("leading"), ("variance_type", "fixed_small"), ("clip_sample", true), ("clip_sample_range", 1.0),
            ("thresholding", false), ("rescale_betas_zero_snr", false)),
    };

    public static IReadOnlyCollection<string> ClassNames => ByClass.Keys;

    public static bool IsSupported(string className) => ByClass.ContainsKey(className);

    public static IReadOnlyDictionary<string, object?> For(string className) =>
        ByClass.TryGetValue(className, out var d)
            ? d
            : throw new AsyncDiffusionException($"Scheduler class '{className}' is not supported; supported classes: {string.Join(", ", ByClass.Keys)}.");

    private static IReadOnlyDictionary<string, object?> With(Dictionary<string, object?> d, params (string Key, object? Value)[] more)
    {
        foreach (var (k, v) in more) d[k] = v;
        return d;
    }
}
