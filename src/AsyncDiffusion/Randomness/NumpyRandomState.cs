namespace AsyncDiffusion.Randomness;

/// <summary>
/// numpy's legacy <c>RandomState(seed).randn(...)</c> (Marsaglia's polar method on 53-bit
/// uniforms, with the cached second value), then <c>.astype(np.float32)</c>: what diffusers'
/// ONNX pipelines draw latents with.
/// </summary>
public sealed class NumpyRandomState : INoiseGenerator
{
    private readonly MersenneTwister _mt;
    private double? _cachedGauss;

    public NumpyRandomState(uint seed) => _mt = new MersenneTwister(seed);

    public NoiseGeneratorKind Kind => NoiseGeneratorKind.Numpy;
    public long Draws => _mt.Draws;
    public double? CachedNormal => _cachedGauss;

    public void NextGaussian(Span<float> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = (float)NextGaussianDouble();
    }

    public void NextGaussian(Span<double> destination)
    {
        for (int i = 0; i < destination.Length; i++) destination[i] = NextGaussianDouble();
    }

    /// <summary><c>random_sample()</c>: 53-bit double in [0, 1).</summary>
    public double NextDouble()
    {
        uint a = _mt.NextUInt32() >> 5, b = _mt.NextUInt32() >> 6;
        return (a * 67108864.0 + b) / 9007199254740992.0;
    }

    private double NextGaussianDouble()
    {
        if (_cachedGauss is double cached)
        {
            _cachedGauss = null;
            return cached;
        }
        double x1, x2, r2;
        do
        {
            x1 = 2.0 * NextDouble() - 1.0;
            x2 = 2.0 * NextDouble() - 1.0;
            r2 = x1 * x1 + x2 * x2;
        } while (r2 >= 1.0 || r2 == 0.0);
        double f = Math.Sqrt(-2.0 * Math.Log(r2) / r2);
        _cachedGauss = f * x1;
        return f * x2;
    }
}
