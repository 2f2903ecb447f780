namespace AsyncDiffusion.Schedulers;

/// <summary>
/// numpy's float32 natural logarithm on x86 (its AVX2/AVX512F kernel): mantissa in [√½, √2),
/// a rational minimax approximation of log(1 + x) evaluated with fused multiply-adds, plus
/// exponent·ln 2. diffusers' DEIS evaluates its coefficients with <c>np.log</c> on float32 values,
/// where the heavy cancellation makes the last bits of each log visible in the result.
/// Positive normal inputs only (rho values).
/// </summary>
internal static class NumpyFloat32Log
{
    private const float P0 = 0.000000000000000000000e+00f, P1 = 9.999999999999998702752e-01f, P2 = 2.112677543073053063722e+00f,
        P3 = 1.480000633576506585156e+00f, P4 = 3.808837741388407920751e-01f, P5 = 2.589979117907922693523e-02f;
    private const float Q0 = 1.000000000000000000000e+00f, Q1 = 2.612677543073109236779e+00f, Q2 = 2.453006071784736363091e+00f,
        Q3 = 9.864942958519418960339e-01f, Q4 = 1.546476374983906719538e-01f, Q5 = 5.875095403124574342950e-03f;
    private const float Ln2 = 0.693147180559945309417232121458176568f, SqrtHalf = 0.707106781186547524400844362104849039f;

    public static float Log(float value)
    {
        if (!(value > 0) || !float.IsNormal(value) || float.IsInfinity(value)) return MathF.Log(value);
        int bits = BitConverter.SingleToInt32Bits(value);
        float exponent = (bits >>> 23) - 126;
        float m = BitConverter.Int32BitsToSingle((bits & 0x7fffff) | (126 << 23));
        if (m <= SqrtHalf)
        {
            m += m;
            exponent -= 1f;
        }
        float x = m - 1f;
        float num = MathF.FusedMultiplyAdd(P5, x, P4);
        num = MathF.FusedMultiplyAdd(num, x, P3);
        num = MathF.FusedMultiplyAdd(num, x, P2);
        num = MathF.FusedMultiplyAdd(num, x, P1);
        num = MathF.FusedMultiplyAdd(num, x, P0);
        float den = MathF.FusedMultiplyAdd(Q5, x, Q4);
        den = MathF.FusedMultiplyAdd(den, x, Q3);
        den = MathF.FusedMultiplyAdd(den, x, Q2);
        den = MathF.FusedMultiplyAdd(den, x, Q1);
        den = MathF.FusedMultiplyAdd(den, x, Q0);
        return MathF.FusedMultiplyAdd(exponent, Ln2, num / den);
    }
}
