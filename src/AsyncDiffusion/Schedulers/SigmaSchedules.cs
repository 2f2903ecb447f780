namespace AsyncDiffusion.Schedulers;

/// <summary>How a sigma scheduler turns its spaced sigmas into the ones it steps through.</summary>
public enum SigmaScheduleKind
{
    /// <summary>The training table interpolated at the spaced timesteps.</summary>
    Interpolated,
    /// <summary>Karras et al. (2022), rho = 7 (<c>use_karras_sigmas</c>).</summary>
    Karras,
    /// <summary>Log-linear from sigma_max to sigma_min (<c>use_exponential_sigmas</c>).</summary>
    Exponential,
    /// <summary>Beta(0.6, 0.6) quantiles between sigma_min and sigma_max (<c>use_beta_sigmas</c>).</summary>
    Beta,
}

/// <summary>
/// The three sigma schedules diffusers offers beside plain interpolation, from sigma_max down to
/// sigma_min in n values (k-diffusion's <c>get_sigmas_karras</c>/<c>_exponential</c>, and "Beta
/// Sampling is All You Need"). Which sigma_min/sigma_max each scheduler passes differs by class.
/// </summary>
public static class SigmaSchedules
{
    public static double[] Create(SigmaScheduleKind kind, double sigmaMin, double sigmaMax, int n) => kind switch
    {
        SigmaScheduleKind.Karras => Karras(sigmaMin, sigmaMax, n),
        SigmaScheduleKind.Exponential => Exponential(sigmaMin, sigmaMax, n),
        SigmaScheduleKind.Beta => Beta(sigmaMin, sigmaMax, n),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "interpolated sigmas come from the table, not a formula"),
    };

    public static double[] Karras(double sigmaMin, double sigmaMax, int n)
    {
        const double rho = 7.0;
        var ramp = TimestepSpacing.NumpyLinspace(0, 1, n);
        double minInvRho = Math.Pow(sigmaMin, 1 / rho), maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(x => Math.Pow(maxInvRho + x * (minInvRho - maxInvRho), rho)).ToArray();
    }

    public static double[] Exponential(double sigmaMin, double sigmaMax, int n) =>
        TimestepSpacing.NumpyLinspace(Math.Log(sigmaMax), Math.Log(sigmaMin), n).Select(Math.Exp).ToArray();

    public static double[] Beta(double sigmaMin, double sigmaMax, int n, double alpha = 0.6, double beta = 0.6) =>
        TimestepSpacing.NumpyLinspace(0, 1, n)
            .Select(x => sigmaMin + BetaDistribution.InverseCdf(1 - x, alpha, beta) * (sigmaMax - sigmaMin))
            .ToArray();
}
