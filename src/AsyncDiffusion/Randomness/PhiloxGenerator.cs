namespace AsyncDiffusion.Randomness;

/// <summary>
/// torch's CUDA <c>randn</c> (Philox4x32-10 plus curand's Box-Muller) as AUTOMATIC1111 emulates
/// it on the CPU: element e of call k takes words 0 and 1 of counter (k, 0, e, 0) under key
/// (seed low, seed high) and becomes <c>sqrt(-2 ln u) · sin v</c>, computed in double and rounded
/// once. This equals real CUDA output while the GPU's grid covers the tensor (every SD 1.x/2.x
/// latent on current GPUs); a GPU's <c>__sincosf</c> differs by at most a few 1e-7.
/// </summary>
public sealed class PhiloxGenerator : INoiseGenerator
{
    private const double TwoPow32Inv = 1.0 / 4294967296.0;
    // float32(2π) · 2^-32: exact in double, as AUTOMATIC1111's float32 constant.
    private const double TwoPiTwoPow32Inv = 6.2831854820251465 / 4294967296.0;

    private readonly uint _keyLo, _keyHi;

    public PhiloxGenerator(ulong seed)
    {
        _keyLo = (uint)seed;
        _keyHi = (uint)(seed >> 32);
    }

    public NoiseGeneratorKind Kind => NoiseGeneratorKind.Philox;

    /// <summary>torch's generator offset, in 32-bit words; grows by 4 per call.</summary>
    public ulong Offset { get; private set; }

    public void NextGaussian(Span<float> destination)
    {
        ulong counter = Offset / 4;
        for (int e = 0; e < destination.Length; e++)
        {
            var (w0, w1, _, _) = Philox4x32(counter, (ulong)e, _keyLo, _keyHi);
            double u = w0 * TwoPow32Inv + TwoPow32Inv / 2;
            double v = w1 * TwoPiTwoPow32Inv + TwoPiTwoPow32Inv / 2;
            double s = Math.Sqrt(-2.0 * Math.Log(u));
            destination[e] = (float)(s * Math.Sin(v));
        }
        Offset += 4;
    }

    /// <summary>Philox4x32-10 of counter (offset lo, offset hi, subsequence lo, subsequence hi).</summary>
    public static (uint, uint, uint, uint) Philox4x32(ulong offset, ulong subsequence, uint key0, uint key1)
    {
        uint c0 = (uint)offset, c1 = (uint)(offset >> 32), c2 = (uint)subsequence, c3 = (uint)(subsequence >> 32);
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = 0xD2511F53UL * c0;
            ulong p1 = 0xCD9E8D57UL * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ key0;
            uint n1 = (uint)p1;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ key1;
            uint n3 = (uint)p0;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            if (round < 9)
            {
                key0 += 0x9E3779B9u;
                key1 += 0xBB67AE85u;
            }
        }
        return (c0, c1, c2, c3);
    }
}
