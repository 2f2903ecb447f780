namespace AsyncDiffusion.Schedulers;

/// <summary>
/// The beta distribution's inverse CDF (scipy's <c>stats.beta.ppf</c>), which diffusers' beta
/// sigma schedule needs. Computed by bisection on the regularized incomplete beta function, to
/// double precision: the schedule then only rounds to float32 as diffusers does.
/// </summary>
internal static class BetaDistribution
{
    public static double InverseCdf(double p, double a, double b)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "expected a probability in [0, 1]");
        if (p == 0) return 0;
        if (p == 1) return 1;
        double logBeta = LogGamma(a) + LogGamma(b) - LogGamma(a + b);
        double lo = 0, hi = 1;
        for (int i = 0; i < 200 && hi - lo > 0; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (mid <= lo || mid >= hi) break;
            if (RegularizedIncompleteBeta(mid, a, b, logBeta) < p) lo = mid;
            else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>I_x(a, b) from its continued fraction, on the side where it converges fast.</summary>
    private static double RegularizedIncompleteBeta(double x, double a, double b, double logBeta)
    {
        double front = Math.Exp(a * Math.Log(x) + b * Math.Log(1 - x) - logBeta);
        return x < (a + 1) / (a + b + 2)
            ? front * ContinuedFraction(x, a, b) / a
            : 1 - front * ContinuedFraction(1 - x, b, a) / b;
    }

    // Modified Lentz evaluation of the incomplete beta continued fraction.
    private static double ContinuedFraction(double x, double a, double b)
    {
        const double tiny = 1e-300, epsilon = 1e-16;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        if (Math.Abs(d) < tiny) d = tiny;
        d = 1 / d;
        double result = d;
        for (int m = 1; m <= 1000; m++)
        {
            int m2 = 2 * m;
            double even = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
            d = 1 + even * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = 1 + even / c; if (Math.Abs(c) < tiny) c = tiny;
            result *= d * c;
            double odd = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
            d = 1 + odd * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = 1 + odd / c; if (Math.Abs(c) < tiny) c = tiny;
            double delta = d * c;
            result *= delta;
            if (Math.Abs(delta - 1) < epsilon) break;
        }
        return result;
    }

    // Lanczos approximation (g = 7, nine terms), accurate to about 1e-15 for positive arguments.
    private static double LogGamma(double x)
    {
        ReadOnlySpan<double> coefficients =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        double sum = coefficients[0];
        for (int i = 1; i < coefficients.Length; i++) sum += coefficients[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
