namespace AsyncDiffusion.Onnx.Graphs;

/// <summary>How a parameter is initialised when it is drawn rather than bound: seeded uniform values or one constant.</summary>
public readonly record struct ParameterInit(double Std, float? Fill)
{
    public static ParameterInit Uniform(double std) => new(std, null);
    public static ParameterInit Constant(float value) => new(0, value);
}

/// <summary>
/// One learned parameter a graph needs, as a PyTorch state dict names and shapes it: the diffusers
/// (or transformers) name and the state-dict shape — Linear weights [out, in], convolutions
/// [out, in, kh, kw]. <see cref="StoredTransposed"/> says the ONNX initializer holds the transpose
/// ([in, out], so a MatMul needs no Transpose node); the builder does that, not the weight source.
/// </summary>
public sealed record ParameterSpec(string Component, string Name, long[] Shape, ParameterInit Init, bool StoredTransposed)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>
/// Where a graph's parameter values come from: seeded random values (synthetic models), a
/// dictionary of named tensors (trained weights), a checkpoint file. Values are returned in
/// state-dict layout, row-major over <see cref="ParameterSpec.Shape"/>.
/// </summary>
public interface IWeightSource
{
    float[] Values(ParameterSpec parameter);
}

/// <summary>
/// Weights from a dictionary of state-dict-named tensors (diffusers/transformers names, PyTorch
/// layout). A parameter that is missing or has the wrong element count is an error naming it;
/// given the tensors' shapes (a safetensors file's), each must equal the parameter's exactly, so a
/// transposed weight is refused too. <see cref="Unused"/> lists entries no graph asked for.
/// </summary>
public sealed class NamedWeights(IReadOnlyDictionary<string, float[]> values, string source = "the named weights",
    IReadOnlyDictionary<string, long[]>? shapes = null) : IWeightSource
{
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public float[] Values(ParameterSpec parameter)
    {
        if (!values.TryGetValue(parameter.Name, out var v))
            throw new ModelFolderException($"{source} have no tensor '{parameter.Name}' ({parameter.Component}, shape {parameter.ShapeText}).");
        if (shapes is not null && shapes.TryGetValue(parameter.Name, out var shape) && !shape.SequenceEqual(parameter.Shape))
            throw new ModelFolderException($"{source}: tensor '{parameter.Name}' has shape [{string.Join(", ", shape)}]; {parameter.Component} needs {parameter.ShapeText}.");
        if (v.LongLength != parameter.ElementCount)
            throw new ModelFolderException($"{source}: tensor '{parameter.Name}' has {v.LongLength:N0} values; {parameter.Component} needs shape {parameter.ShapeText} = {parameter.ElementCount:N0}.");
        lock (_used) _used.Add(parameter.Name);
        return v;
    }

    /// <summary>Entries no parameter has asked for so far.</summary>
    public IReadOnlyList<string> Unused
    {
        get { lock (_used) return values.Keys.Where(k => !_used.Contains(k)).Order(StringComparer.Ordinal).ToArray(); }
    }
}
