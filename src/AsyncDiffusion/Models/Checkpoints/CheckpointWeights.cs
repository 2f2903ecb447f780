using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>How far a conversion is: parameter values bound so far out of all.</summary>
public readonly record struct ConversionProgress(string Component, long Done, long Total);

/// <summary>
/// The weight source that binds a checkpoint's tensors to the graph builder's parameters: finds
/// each parameter's tensor (renamed, row block for packed q/k/v), checks its shape, reads it as
/// float32 (from F32, F16 or BF16; 1×1 convolutions and linear weights are the same bytes), merges
/// LoRA deltas, and records which tensors were used so the rest can be reported.
/// </summary>
internal sealed class CheckpointWeights(IReadOnlyDictionary<string, ComponentTensors> components, LoraMerge loras, string family,
    long total, IProgress<ConversionProgress>? progress) : IWeightSource
{
    private readonly HashSet<(SafeTensors, string)> _used = new();
    private long _done;

    public bool WasUsed(SafeTensors file, string name) => _used.Contains((file, name));

    public float[] Values(ParameterSpec p)
    {
        var component = components[p.Component];
        var location = component.Locate(p.Name, out string expected)
            ?? throw new ModelFolderException($"'{component.Files[0].Source}' has no tensor '{expected}', which the {family} {p.Component} needs (diffusers name '{p.Name}', shape {p.ShapeText}).");
        CheckShape(location, p, family);
        long count = p.ElementCount;
        var values = location.File.ReadFloats(location.Info, location.Part * count, count);
        loras.Apply(p, values);
        lock (_used) _used.Add((location.File, location.Info.Name));
        _done += count;
        progress?.Report(new ConversionProgress(p.Component, _done, total));
        return values;
    }

    /// <summary>The tensor (or its row block) must have the parameter's shape, up to trailing 1×1 kernel dimensions.</summary>
    internal static void CheckShape(TensorLocation location, ParameterSpec p, string family)
    {
        var info = location.Info;
        if (location.Parts > 1 && (info.Shape.Length == 0 || info.Shape[0] % location.Parts != 0))
            throw new ModelFolderException($"'{location.File.Source}': tensor '{info.Name}' {info.ShapeText} cannot be split into {location.Parts} equal row blocks (packed q/k/v).");
        long[] shape = info.Shape.ToArray();
        if (location.Parts > 1) shape[0] /= location.Parts;
        if (!SameShape(shape, p.Shape))
            throw new ModelFolderException($"'{location.File.Source}': tensor '{info.Name}' has shape {info.ShapeText}{(location.Parts > 1 ? $" ({location.Parts} packed blocks)" : "")} but the {family} {p.Component} parameter '{p.Name}' needs {p.ShapeText}; the file does not match the detected architecture.");
    }

    // 1×1 convolutions and linear layers store the same bytes: [C, C, 1, 1] matches [C, C].
    private static bool SameShape(long[] a, long[] b) => Trim(a).SequenceEqual(Trim(b));

    private static IEnumerable<long> Trim(long[] shape)
    {
        int n = shape.Length;
        while (n > 2 && shape[n - 1] == 1) n--;
        return shape.Take(n);
    }
}
