namespace AsyncDiffusion.Schedulers;

/// <summary>
/// Base of Heun, DPM2 and DPM2 a, which call the model twice per solver step (except on the last
/// step). They are modelled as diffusers models them: the timestep list holds 2n − 1 entries (the
/// second call's timesteps interleaved) and each <see cref="Scheduler.Step"/> consumes one model
/// output, so a caller that runs one UNet call per list entry needs to know nothing more. A
/// first-stage call stores the sample the second-stage call steps from.
/// </summary>
public abstract class SecondOrderSigmaScheduler : SigmaScheduler
{
    protected SecondOrderSigmaScheduler(SchedulerConfig config, string className) : base(config, className)
    {
        Settings.SigmaSchedule();
    }

    public override int Order => 2;

    /// <summary>The sample at the start of the current solver step (set by a first-stage call).</summary>
    protected float[]? StoredSample { get; set; }

    /// <summary>Whether the next call is the first of a solver step (diffusers' <c>state_in_first_order</c>).</summary>
    protected bool InFirstStage => StoredSample is null;

    protected override void ResetState()
    {
        base.ResetState();
        StoredSample = null;
    }

    /// <summary>diffusers' <c>cat([a[:1], a[1:end].repeat_interleave(2), a[-1:]])</c>.</summary>
    protected static float[] RepeatInterior(float[] a, int end)
    {
        var r = new List<float>(2 * a.Length) { a[0] };
        for (int i = 1; i < end; i++) { r.Add(a[i]); r.Add(a[i]); }
        r.Add(a[^1]);
        return r.ToArray();
    }

    public override void AddNoise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, double timestep, Span<float> destination) =>
        AddNoiseVarianceExploding(original, noise, timestep, destination);
}
