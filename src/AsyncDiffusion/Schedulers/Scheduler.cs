namespace AsyncDiffusion.Schedulers;

/// <summary>Fills a buffer with N(0, 1) noise: how a scheduler asks for the step noise it needs.</summary>
public delegate void StepNoise(Span<float> destination);

public enum PredictionType { Epsilon, VPrediction, Sample }

/// <summary>
/// A denoising scheduler with diffusers' contract: <see cref="SetTimesteps"/> for a step count
/// (or <see cref="SetTimestepsForStrength"/> for img2img), then for each timestep
/// <see cref="ScaleModelInput"/> before the UNet and <see cref="Step"/> after it.
/// One instance holds one request's state (step index, multistep history): never share it.
/// Latents are float32; coefficients are computed in double.
/// </summary>
public abstract class Scheduler
{
    protected Scheduler(SchedulerConfig config, string className)
    {
        Settings = new SchedulerSettings(config, className);
        Table = new NoiseSchedule(Settings);
        Prediction = Settings.Choice("prediction_type", "epsilon", "v_prediction", "sample") switch
        {
            "v_prediction" => PredictionType.VPrediction,
            "sample" => PredictionType.Sample,
            _ => PredictionType.Epsilon,
        };
    }

    protected SchedulerSettings Settings { get; }
    public NoiseSchedule Table { get; }
    public PredictionType Prediction { get; }

    /// <summary>The diffusers class this scheduler reproduces.</summary>
    public string ClassName => Settings.ClassName;

    public int NumInferenceSteps { get; private set; }

    /// <summary>The timesteps to hand the UNet, in order (float32 values, fractional for some sigma schedules).</summary>
    public IReadOnlyList<double> Timesteps => TimestepArray;
    protected double[] TimestepArray { get; set; } = Array.Empty<double>();

    /// <summary>Sigma-space schedulers' sigmas (one more than the timesteps), else empty.</summary>
    public IReadOnlyList<float> Sigmas => SigmaArray;
    protected float[] SigmaArray { get; set; } = Array.Empty<float>();

    /// <summary>Factor for the initial noise of txt2img.</summary>
    public double InitNoiseSigma { get; protected set; } = 1.0;

    /// <summary>Whether this scheduler has diffusers' <c>set_begin_index</c> (img2img starts there).</summary>
    public virtual bool HasBeginIndex => false;

    public int? BeginIndex { get; private set; }

    public void SetTimesteps(int steps) => Configure(steps, strength: 1.0);

    /// <summary>Validates, computes the schedule and clears per-run state.</summary>
    protected void Configure(int steps, double strength)
    {
        ValidateSteps(steps);
        NumInferenceSteps = steps;
        BeginIndex = null;
        ComputeTimesteps(steps, strength);
        ResetState();
    }

    /// <summary>
    /// img2img: sets the timesteps for <paramref name="steps"/> and returns the index in
    /// <see cref="Timesteps"/> where denoising starts (diffusers' <c>get_timesteps</c>: the last
    /// ⌊steps·strength⌋ steps run). Where the scheduler has a begin index, it is set.
    /// </summary>
    public virtual int SetTimestepsForStrength(int steps, double strength)
    {
        ValidateStrength(strength);
        SetTimesteps(steps);
        int initTimestep = Math.Min((int)(steps * strength), steps);
        if (initTimestep < 1)
            throw new AsyncDiffusionException($"Strength {strength} with {steps} steps runs no denoising step; steps × strength must be at least 1 (raise the strength or the steps).");
        int start = Math.Max(steps - initTimestep, 0) * Order;
        if (HasBeginIndex) SetBeginIndex(start);
        return start;
    }

    /// <summary>
    /// AUTOMATIC1111's img2img with fixed steps (its hires fix's second pass): a schedule of
    /// ⌊steps / min(strength, 0.999)⌋ steps of which exactly the last <paramref name="steps"/> run
    /// (<c>setup_img2img_steps</c>). Returns the start index in <see cref="Timesteps"/> and sets the
    /// begin index where the scheduler has one.
    /// </summary>
    public int SetTimestepsForFixedSteps(int steps, double strength)
    {
        ValidateStrength(strength);
        ValidateSteps(steps);
        int total = (int)(steps / Math.Min(strength, 0.999));
        SetTimesteps(total);
        int start = (total - steps) * Order;
        if (HasBeginIndex) SetBeginIndex(start);
        return start;
    }

    /// <summary>
    /// Timestep entries per solver step, as diffusers' <c>scheduler.order</c>: 2 for Heun, DPM2 and
    /// DPM2 a (two UNet calls per step), else 1. img2img skips this many entries per skipped step.
    /// </summary>
    public virtual int Order => 1;

    public void SetBeginIndex(int index)
    {
        if (!HasBeginIndex) throw new InvalidOperationException($"{ClassName} has no begin index.");
        BeginIndex = index;
    }

    /// <summary>
    /// What <c>scale_model_input</c> divides the sample by at this timestep (1 for most
    /// schedulers), as the float32 value diffusers computes. Sigma schedulers fix their step
    /// index on the first call, as diffusers does.
    /// </summary>
    public virtual float ModelInputDivisor(double timestep) => 1.0f;

    public void ScaleModelInput(ReadOnlySpan<float> sample, double timestep, Span<float> destination)
    {
        float divisor = ModelInputDivisor(timestep);
        if (divisor == 1.0f)
        {
            sample.CopyTo(destination);
            return;
        }
        for (int i = 0; i < sample.Length; i++) destination[i] = sample[i] / divisor;
    }

    /// <summary>Advances <paramref name="sample"/> in place by one step from the model's output at <paramref name="timestep"/>.</summary>
    public abstract void Step(ReadOnlySpan<float> modelOutput, double timestep, Span<float> sample, StepNoise? noise = null);

    /// <summary>Noises clean latents to <paramref name="timestep"/> (img2img's starting point).</summary>
    public abstract void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination);

    protected abstract void ComputeTimesteps(int steps, double strength);

    /// <summary>
    /// Clears per-run state. It must allocate fresh state objects rather than clear shared ones:
    /// <see cref="CloneForRun"/> copies a configured scheduler member by member.
    /// </summary>
    protected virtual void ResetState() { }

    /// <summary>
    /// A copy with the same schedule and fresh per-run state: a request's schedule is computed
    /// once and every image of it runs on its own copy.
    /// </summary>
    public Scheduler CloneForRun()
    {
        var copy = (Scheduler)MemberwiseClone();
        copy.ResetState();
        return copy;
    }

    protected void ValidateSteps(int steps)
    {
        if (steps < 1) throw new AsyncDiffusionException($"Steps must be at least 1; got {steps}.");
        if (steps > Table.TrainTimesteps)
            throw new AsyncDiffusionException($"Steps must be at most the model's {Table.TrainTimesteps} training timesteps; got {steps}.");
    }

    protected static void ValidateStrength(double strength)
    {
        if (!(strength > 0 && strength <= 1))
            throw new AsyncDiffusionException($"Strength must be in (0, 1]; got {strength}.");
    }

    /// <summary>Draws this step's noise from the caller's source (the request's generator, so seeds reproduce).</summary>
    protected float[] DrawNoise(StepNoise? noise, int length)
    {
        if (noise is null) throw new ArgumentNullException(nameof(noise), $"{ClassName} draws noise at this step; pass a noise source.");
        var z = new float[length];
        noise(z);
        return z;
    }

    /// <summary>Model output → predicted clean sample for variance-preserving schedulers.</summary>
    protected double PredictOriginal(double modelOutput, double sample, double alphaProd)
    {
        double betaProd = 1 - alphaProd;
        return Prediction switch
        {
            PredictionType.Epsilon => (sample - Math.Sqrt(betaProd) * modelOutput) / Math.Sqrt(alphaProd),
            PredictionType.VPrediction => Math.Sqrt(alphaProd) * sample - Math.Sqrt(betaProd) * modelOutput,
            _ => modelOutput,
        };
    }

    /// <summary>VP add_noise: sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·noise at an integer timestep.</summary>
    protected void AddNoiseVariancePreserving(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int timestep, Span<float> destination)
    {
        if (timestep < 0 || timestep >= Table.TrainTimesteps)
            throw new AsyncDiffusionException($"Timestep {timestep} is outside the model's 0..{Table.TrainTimesteps - 1}.");
        double a = Table.AlphasCumprod[timestep];
        double sa = Math.Sqrt(a), sb = Math.Sqrt(1 - a);
        for (int i = 0; i < original.Length; i++) destination[i] = (float)(sa * original[i] + sb * noise[i]);
    }

    internal static int AsIntTimestep(double t) => (int)Math.Round(t);
}
