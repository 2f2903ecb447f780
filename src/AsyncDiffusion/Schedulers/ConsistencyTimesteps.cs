namespace AsyncDiffusion.Schedulers;

/// <summary>
/// The timestep lists of the consistency-distilled schedulers (LCM, TCD): every (N/original)th
/// training timestep ("origin" schedule k − 1, 2k − 1, …), truncated by the strength, reversed,
/// and picked at floor(linspace(0, len, n, endpoint=False)).
/// </summary>
internal static class ConsistencyTimesteps
{
    public static double[] Compute(SchedulerSettings settings, int trainTimesteps, int steps, double strength)
    {
        int original = settings.Int("original_inference_steps");
        if (original < 1 || original > trainTimesteps)
            throw settings.Invalid("original_inference_steps", $"is {original}; expected 1 to num_train_timesteps = {trainTimesteps}");
        int k = trainTimesteps / original;
        int available = (int)(original * strength);
        if (steps > available)
            throw new AsyncDiffusionException(
                $"{settings.ClassName} can run at most {available} steps{(strength < 1 ? $" at strength {strength}" : "")} (original_inference_steps = {original}); got {steps}.");
        var origin = Enumerable.Range(1, available).Select(i => i * k - 1).Reverse().ToArray();
        var picks = TimestepSpacing.NumpyLinspace(0, origin.Length, steps, endpoint: false);
        return picks.Select(p => (double)origin[(int)Math.Floor(p)]).ToArray();
    }
}
