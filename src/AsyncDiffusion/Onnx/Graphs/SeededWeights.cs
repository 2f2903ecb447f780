using System.Text;

namespace AsyncDiffusion.Onnx.Graphs;

/// <summary>
/// Deterministic random weights: each tensor draws from its own stream, keyed by the model seed
/// and the tensor's name, so adding or reordering tensors never changes the others and the same
/// seed always writes byte-identical files.
/// </summary>
internal sealed class SeededWeights(ulong seed) : IWeightSource
{
    public float[] Values(ParameterSpec parameter)
    {
        if (parameter.Init.Fill is not float fill) return Uniform(parameter.Name, parameter.ElementCount, parameter.Init.Std);
        var values = new float[parameter.ElementCount];
        Array.Fill(values, fill);
        return values;
    }

    /// <summary>Uniform values with the given standard deviation (bound √3·std), mean 0.</summary>
    public float[] Uniform(string name, long count, double std)
    {
        var values = new float[count];
        ulong state = seed ^ Fnv1a(name);
        float bound = (float)(Math.Sqrt(3.0) * std);
        for (long i = 0; i < count; i++)
        {
            // 24 random bits → [-1, 1)
            float u = (SplitMix64(ref state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
            values[i] = u * bound;
        }
        return values;
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 0xcbf29ce484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text)) hash = (hash ^ b) * 0x100000001b3UL;
        return hash;
    }
}
