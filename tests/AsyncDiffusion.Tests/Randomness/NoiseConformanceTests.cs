using System.Security.Cryptography;
using System.Text.Json;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Tests.Randomness;

/// <summary>Replays every noise vector in ../shared/data/rng (and the extra-cases folder).</summary>
public class NoiseConformanceTests
{
    private static readonly Dictionary<string, NoiseGeneratorKind> Targets = new()
    {
        ["torch_cpu"] = NoiseGeneratorKind.Torch,
        ["numpy_legacy"] = NoiseGeneratorKind.Numpy,
        ["philox_cuda"] = NoiseGeneratorKind.Philox,
    };

    public static TheoryData<string, string, int> Cases()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var file in SharedData.CaseFiles("rng", "rng_cases"))
            foreach (var g in SharedData.Load(file).GetProperty("generators").EnumerateObject())
                if (Targets.ContainsKey(g.Name))
                    for (int i = 0; i < g.Value.GetProperty("cases").GetArrayLength(); i++) data.Add(file, g.Name, i);
        return data;
    }

    public static TheoryData<string, int> Sequences()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in SharedData.CaseFiles("rng", "rng_cases"))
            if (SharedData.Load(file).TryGetProperty("sequences", out var seqs))
                for (int i = 0; i < seqs.GetArrayLength(); i++) data.Add(file, i);
        return data;
    }

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var file in SharedData.CaseFiles("rng", "rng_cases")) data.Add(file);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SingleCallMatchesReference(string file, string generator, int index)
    {
        var c = SharedData.Load(file).GetProperty("generators").GetProperty(generator).GetProperty("cases")[index];
        var rng = NoiseGenerators.Create(Targets[generator], c.GetProperty("seed").GetUInt64());
        var values = new float[c.GetProperty("numel").GetInt32()];
        rng.NextGaussian(values);
        AssertCall(c, values, generator);

        if (c.TryGetProperty("first16_f64", out var f64))
        {
            // numpy's values before the float32 cast, exact as doubles.
            var doubles = new double[values.Length];
            new NumpyRandomState(c.GetProperty("seed").GetUInt32()).NextGaussian(doubles);
            Assert.Equal(f64.EnumerateArray().Select(v => v.GetDouble()), doubles.Take(16));
        }
    }

    [Theory]
    [MemberData(nameof(Sequences))]
    public void MultiCallSequenceMatchesReference(string file, int index)
    {
        var s = SharedData.Load(file).GetProperty("sequences")[index];
        string generator = s.GetProperty("generator").GetString()!;
        var rng = NoiseGenerators.Create(Targets[generator], s.GetProperty("seed").GetUInt64());
        foreach (var call in s.GetProperty("calls").EnumerateArray())
        {
            var values = new float[call.GetProperty("numel").GetInt32()];
            rng.NextGaussian(values);
            AssertCall(call, values, generator);
            if (call.TryGetProperty("mt19937_draws_so_far", out var draws))
                Assert.Equal(draws.GetInt64(), rng switch { TorchCpuGenerator t => t.Draws, NumpyRandomState n => n.Draws, _ => -1 });
            if (call.TryGetProperty("cached_normal_after", out var cached))
            {
                double? got = rng switch { TorchCpuGenerator t => t.CachedNormal, NumpyRandomState n => n.CachedNormal, _ => null };
                if (cached.ValueKind == JsonValueKind.Null) Assert.Null(got);
                else Assert.Equal(cached.GetDouble(), got);
            }
            if (call.TryGetProperty("philox_offset_after", out var offset))
                Assert.Equal(offset.GetUInt64(), ((PhiloxGenerator)rng).Offset);
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void MersenneTwisterWordsMatchReference(string file)
    {
        if (!SharedData.Load(file).TryGetProperty("mt19937_outputs", out var outputs)) return;
        foreach (var o in outputs.EnumerateArray())
        {
            var mt = new MersenneTwister(o.GetProperty("seed").GetUInt32());
            var words = Enumerable.Range(0, 1000).Select(_ => mt.NextUInt32()).ToArray();
            Assert.Equal(o.GetProperty("first8").EnumerateArray().Select(w => w.GetUInt32()), words.Take(8));
            Assert.Equal(o.GetProperty("output_1000").GetUInt32(), words[999]);
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void PhiloxWordsMatchReference(string file)
    {
        if (!SharedData.Load(file).TryGetProperty("philox_words", out var words)) return;
        foreach (var w in words.EnumerateArray())
        {
            ulong seed = w.GetProperty("seed").GetUInt64();
            var (a, b, c, d) = PhiloxGenerator.Philox4x32(w.GetProperty("offset").GetUInt64() / 4, w.GetProperty("subsequence").GetUInt64(), (uint)seed, (uint)(seed >> 32));
            Assert.Equal(w.GetProperty("words").EnumerateArray().Select(x => x.GetUInt32()), new[] { a, b, c, d });
        }
    }

    [Fact]
    public void MersenneTwisterMatchesTheStandardKnownAnswers()
    {
        var mt = new MersenneTwister(5489);
        Assert.Equal(3499211612u, mt.NextUInt32());
        for (int i = 2; i < 10000; i++) mt.NextUInt32();
        Assert.Equal(4123659995u, mt.NextUInt32());
    }

    [Fact]
    public void TorchSeedUsesOnlyTheLow32Bits()
    {
        var a = new float[64];
        var b = new float[64];
        new TorchCpuGenerator(7).NextGaussian(a);
        new TorchCpuGenerator(7 + (1UL << 32)).NextGaussian(b);
        Assert.Equal(a, b);
    }

    private static void AssertCall(JsonElement c, float[] values, string generator)
    {
        // first16/last8/SHA-256 are exact for all three targets (Philox with the double-precision recipe).
        Assert.Equal(Floats(c.GetProperty("first16")), values.Take(16).ToArray());
        Assert.Equal(Floats(c.GetProperty("last8")), values.Skip(Math.Max(0, values.Length - 8)).ToArray());
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        Assert.Equal(c.GetProperty("sha256_f32le").GetString(), Convert.ToHexStringLower(SHA256.HashData(bytes)));
        double sum = values.Sum(v => (double)v), sumSq = values.Sum(v => (double)v * v);
        Assert.True(Math.Abs(sum - c.GetProperty("sum").GetDouble()) <= 1e-6, $"{generator} sum {sum}");
        double refSq = c.GetProperty("sum_sq").GetDouble();
        Assert.True(Math.Abs(sumSq - refSq) <= 1e-9 * refSq, $"{generator} sum_sq {sumSq}");
    }

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
}
