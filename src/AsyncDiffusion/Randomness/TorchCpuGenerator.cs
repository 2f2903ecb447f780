namespace AsyncDiffusion.Randomness;

/// <summary>
/// <c>torch.manual_seed(seed); torch.randn(shape)</c> for float32 on x86-64, bit for bit.
/// n ≥ 16 runs ATen's AVX2 <c>normal_fill</c>: 24-bit uniforms, Box-Muller in blocks of 16 with
/// the Cephes-derived log/sincos and GCC's fused multiply-adds (reproduced with
/// <see cref="MathF.FusedMultiplyAdd"/>); n &lt; 16 runs the double-precision path with its
/// cached second value.
/// </summary>
public sealed class TorchCpuGenerator : INoiseGenerator
{
    private readonly MersenneTwister _mt;
    private double? _cachedNormal;

    /// <summary>Only the low 32 bits of the seed reach the engine, as in torch.</summary>
    public TorchCpuGenerator(ulong seed) => _mt = new MersenneTwister((uint)seed);

    public NoiseGeneratorKind Kind => NoiseGeneratorKind.Torch;
    public long Draws => _mt.Draws;
    public double? CachedNormal => _cachedNormal;

    public void NextGaussian(Span<float> destination)
    {
        if (destination.Length >= 16) NormalFill(destination);
        else
            for (int i = 0; i < destination.Length; i++)
                destination[i] = (float)(NextDoubleNormal() + 0.0);
    }

    private void NormalFill(Span<float> d)
    {
        int n = d.Length;
        for (int i = 0; i < n; i++) d[i] = Uniform24();
        for (int b = 0; b + 16 <= n; b += 16) BoxMuller16(d.Slice(b, 16));
        if (n % 16 != 0)
        {
            // The tail re-draws the last 16 values (overwriting part of the last full block).
            var tail = d.Slice(n - 16, 16);
            for (int i = 0; i < 16; i++) tail[i] = Uniform24();
            BoxMuller16(tail);
        }
    }

    private float Uniform24() => (_mt.NextUInt32() & 0xFFFFFF) * (1.0f / 16777216.0f);

    private static void BoxMuller16(Span<float> d)
    {
        for (int j = 0; j < 8; j++)
        {
            float u1 = 1.0f - d[j];
            float u2 = d[j + 8];
            float radius = MathF.Sqrt(-2.0f * CephesLog(u1));
            float theta = 6.2831854820251465f * u2;
            CephesSinCos(theta, out float sin, out float cos);
            d[j] = radius * cos + 0.0f;
            d[j + 8] = radius * sin + 0.0f;
        }
    }

    // log256_ps from ATen's avx_mathfun.h, x in (0, 1].
    private static float CephesLog(float x)
    {
        int bits = BitConverter.SingleToInt32Bits(x);
        float e = ((bits >> 23) & 0xFF) - 127;
        e += 1.0f;
        float m = BitConverter.Int32BitsToSingle((bits & ~0x7F800000) | 0x3F000000); // mantissa in [0.5, 1)
        if (m < 0.707106781186547524f)
        {
            e -= 1.0f;
            m = (m - 1.0f) + m;
        }
        else m -= 1.0f;

        float z = m * m;
        float y = 7.0376836292E-2f;
        y = MathF.FusedMultiplyAdd(y, m, -1.1514610310E-1f);
        y = MathF.FusedMultiplyAdd(y, m, 1.1676998740E-1f);
        y = MathF.FusedMultiplyAdd(y, m, -1.2420140846E-1f);
        y = MathF.FusedMultiplyAdd(y, m, 1.4249322787E-1f);
        y = MathF.FusedMultiplyAdd(y, m, -1.6668057665E-1f);
        y = MathF.FusedMultiplyAdd(y, m, 2.0000714765E-1f);
        y = MathF.FusedMultiplyAdd(y, m, -2.4999993993E-1f);
        y = MathF.FusedMultiplyAdd(y, m, 3.3333331174E-1f);
        y *= m;
        y = MathF.FusedMultiplyAdd(y, z, e * -2.12194440e-4f);
        y -= z * 0.5f;
        m += y;
        return MathF.FusedMultiplyAdd(e, 0.693359375f, m);
    }

    // sincos256_ps from ATen's avx_mathfun.h, for theta >= 0.
    private static void CephesSinCos(float theta, out float sin, out float cos)
    {
        int j = (int)(theta * 1.27323954473516f);
        j = (j + 1) & ~1;
        float y = j;
        float x = MathF.FusedMultiplyAdd(y, -0.78515625f, theta);
        x = MathF.FusedMultiplyAdd(y, -2.4187564849853515625e-4f, x);
        x = MathF.FusedMultiplyAdd(y, -3.77489497744594108e-8f, x);
        float z = x * x;

        float c = MathF.FusedMultiplyAdd(2.443315711809948E-5f, z, -1.388731625493765E-3f);
        c = MathF.FusedMultiplyAdd(c, z, 4.166664568298827E-2f);
        c *= z;
        c = MathF.FusedMultiplyAdd(c, z, -(z * 0.5f));
        c += 1.0f;

        float s = MathF.FusedMultiplyAdd(-1.9515295891E-4f, z, 8.3321608736E-3f);
        s = MathF.FusedMultiplyAdd(s, z, -1.6666654611E-1f);
        s *= z;
        s = MathF.FusedMultiplyAdd(s, x, x);

        if ((j & 2) == 0) { sin = s; cos = c; }
        else { sin = c; cos = s; }
        if ((j & 4) != 0) sin = -sin;
        if (((j - 2) & 4) == 0) cos = -cos;
    }

    // at::normal_distribution<double>: pairs of (cos, sin) values, the second one cached.
    private double NextDoubleNormal()
    {
        if (_cachedNormal is double cached)
        {
            _cachedNormal = null;
            return cached;
        }
        double u1 = NextDouble53();
        double u2 = NextDouble53();
        double r = Math.Sqrt(-2.0 * NativeMath.Log1P(-u2));
        double theta = 2.0 * Math.PI * u1;
        _cachedNormal = r * Math.Sin(theta);
        return r * Math.Cos(theta);
    }

    private double NextDouble53()
    {
        ulong hi = _mt.NextUInt32(), lo = _mt.NextUInt32();
        return (((hi << 32) | lo) & ((1UL << 53) - 1)) * (1.0 / (1UL << 53));
    }
}
