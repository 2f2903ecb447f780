namespace AsyncDiffusion.Schedulers;

/// <summary>Integer timestep lists of DDIM, DDPM and PNDM for the three spacings.</summary>
internal static class VariancePreservingTimesteps
{
    public static double[] Descending(SchedulerSettings s, int trainSteps, int steps) =>
        s.Spacing() switch
        {
            TimestepSpacing.Linspace => TimestepSpacing.LinspaceDescending(trainSteps, steps, round: true),
            TimestepSpacing.Leading => TimestepSpacing.LeadingDescending(trainSteps, steps, s.Int("steps_offset")),
            _ => TimestepSpacing.TrailingDescending(trainSteps, steps),
        };

    /// <summary>ᾱ used past the last step: 1 with <c>set_alpha_to_one</c>, else ᾱ₀.</summary>
    public static double FinalAlphaCumprod(SchedulerSettings s, NoiseSchedule table) =>
        s.Bool("set_alpha_to_one") ? 1.0 : table.AlphasCumprod[0];
}
