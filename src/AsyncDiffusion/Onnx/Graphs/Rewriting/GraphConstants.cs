using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>The small constants a rewrite adds to a graph: one initializer per distinct value, shared by every node that reads it.</summary>
internal sealed class GraphConstants(OnnxGraph graph, string stem)
{
    private readonly Dictionary<string, string> _byValue = new(StringComparer.Ordinal);

    public string Int64s(params long[] values) =>
        Get($"i64 {string.Join(',', values)}", name => TensorData.Int64(name, [values.Length], values));

    /// <summary>A float32 vector of <paramref name="count"/> copies of <paramref name="value"/>.</summary>
    public string Filled(float value, long count) =>
        Get($"f32 {value} x {count}", name => TensorData.Float(name, [count], Enumerable.Repeat(value, (int)count).ToArray()));

    private string Get(string key, Func<string, TensorProto> make)
    {
        if (!_byValue.TryGetValue(key, out var name)) _byValue[key] = name = graph.AddInitializer(make(graph.Fresh(stem)));
        return name;
    }
}
