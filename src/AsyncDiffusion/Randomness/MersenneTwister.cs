namespace AsyncDiffusion.Randomness;

/// <summary>The reference MT19937 (mt19937ar) seeded with <c>init_genrand</c>, as torch's CPU generator and numpy's legacy RandomState use it.</summary>
public sealed class MersenneTwister
{
    private const int N = 624, M = 397;
    private readonly uint[] _mt = new uint[N];
    private int _index;

    public MersenneTwister(uint seed) => Seed(seed);

    /// <summary>Words drawn since seeding.</summary>
    public long Draws { get; private set; }

    public void Seed(uint seed)
    {
        _mt[0] = seed;
        for (uint i = 1; i < N; i++) _mt[i] = 1812433253u * (_mt[i - 1] ^ (_mt[i - 1] >> 30)) + i;
        _index = N;
        Draws = 0;
    }

    public uint NextUInt32()
    {
        if (_index >= N) Regenerate();
        uint y = _mt[_index++];
        Draws++;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    private void Regenerate()
    {
        for (int i = 0; i < N; i++)
        {
            uint y = (_mt[i] & 0x80000000u) | (_mt[(i + 1) % N] & 0x7fffffffu);
            _mt[i] = _mt[(i + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908b0dfu : 0u);
        }
        _index = 0;
    }
}
