namespace AsyncDiffusion.Models.Synthetic;

/// <summary>
/// Trained values for a graph the builder writes, looked up by the builder's parameter names and
/// shapes (Linear weights stored [in, out], as in the ONNX initializers). Each tensor must be
/// used exactly once, so a name or shape that drifted between the trainer and the builder is an
/// error rather than a silently random weight.
/// </summary>
public sealed class TrainedWeights(SafeTensors source)
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

    internal float[] Take(string name, long[] shape)
    {
        if (!source.Contains(name))
            throw new AsyncDiffusionException($"'{source.Source}' has no tensor '{name}'; the graph needs it with shape [{string.Join(", ", shape)}].");
        var (actual, values) = source[name];
        if (!actual.SequenceEqual(shape))
            throw new AsyncDiffusionException($"'{source.Source}': tensor '{name}' has shape [{string.Join(", ", actual)}]; the graph needs [{string.Join(", ", shape)}].");
        if (!_taken.Add(name)) throw new InvalidOperationException($"Tensor {name} was bound twice.");
        return values;
    }

    /// <summary>Fails when tensors were never bound (after building every graph that reads this file): the file and the graphs disagree.</summary>
    public void EnsureAllUsed()
    {
        var unused = source.Names.Where(n => !_taken.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (unused.Count > 0)
            throw new AsyncDiffusionException($"'{source.Source}' has {unused.Count} tensor(s) the graph does not use, e.g. '{unused[0]}'; the weights were trained for a different configuration.");
    }
}
