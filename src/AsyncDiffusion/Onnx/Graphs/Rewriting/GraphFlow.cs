using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// How values flow through a graph, by structure alone: which graph inputs each tensor's
/// values depend on, whether a weight layer lies upstream of it, and whether it reaches a graph
/// output without passing another weight layer. Shape and Size read only the shape of their
/// input, so value dependence stops there (a UNet's time embedding reads the sample's batch
/// size, not its values).
/// </summary>
internal sealed class GraphFlow
{
    private readonly Dictionary<string, ulong> _dependsOn = new(StringComparer.Ordinal);
    private readonly HashSet<string> _afterWeightLayer = new(StringComparer.Ordinal);
    private readonly HashSet<string> _reachesOutputDirectly = new(StringComparer.Ordinal);
    private readonly string[] _inputs;
    private readonly int?[] _ranks;

    private static bool ReadsShapeOnly(NodeProto node) => node.OpType is "Shape" or "Size";

    public GraphFlow(OnnxGraph graph, Func<NodeProto, bool> isWeightLayer)
    {
        var inputs = graph.Graph.Input.Where(i => !graph.IsInitializer(i.Name)).Take(64).ToArray();
        _inputs = inputs.Select(i => i.Name).ToArray();
        _ranks = inputs.Select(i => i.Type?.TensorType?.Shape is { } s ? (int?)s.Dim.Count : null).ToArray();
        for (int i = 0; i < _inputs.Length; i++) _dependsOn[_inputs[i]] = 1UL << i;

        foreach (var node in graph.Graph.Node)
        {
            ulong mask = 0;
            bool after = isWeightLayer(node);
            if (!ReadsShapeOnly(node))
                foreach (var input in node.Input.Where(i => i.Length > 0))
                {
                    mask |= _dependsOn.GetValueOrDefault(input);
                    after |= _afterWeightLayer.Contains(input);
                }
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                _dependsOn[output] = mask;
                if (after) _afterWeightLayer.Add(output);
            }
        }

        foreach (var output in graph.GraphOutputs) _reachesOutputDirectly.Add(output);
        for (int n = graph.Graph.Node.Count - 1; n >= 0; n--)
        {
            var node = graph.Graph.Node[n];
            if (isWeightLayer(node) || ReadsShapeOnly(node) || !node.Output.Any(_reachesOutputDirectly.Contains)) continue;
            foreach (var input in node.Input.Where(i => i.Length > 0)) _reachesOutputDirectly.Add(input);
        }
    }

    /// <summary>The graph inputs whose values <paramref name="tensor"/> depends on.</summary>
    public IReadOnlyList<string> InputsOf(string tensor)
    {
        ulong mask = _dependsOn.GetValueOrDefault(tensor);
        return Enumerable.Range(0, _inputs.Length).Where(i => (mask & (1UL << i)) != 0).Select(i => _inputs[i]).ToArray();
    }

    /// <summary>
    /// Whether <paramref name="tensor"/> depends on graph inputs and only on per-item scalars or
    /// vectors (rank ≤ 1, such as a timestep): a conditioning path, not image or text data.
    /// </summary>
    public bool DependsOnlyOnScalarInputs(string tensor)
    {
        ulong mask = _dependsOn.GetValueOrDefault(tensor);
        if (mask == 0) return false;
        for (int i = 0; i < _inputs.Length; i++)
            if ((mask & (1UL << i)) != 0 && _ranks[i] is not (0 or 1)) return false;
        return true;
    }

    /// <summary>Whether some weight layer computes part of <paramref name="tensor"/>'s value.</summary>
    public bool IsAfterWeightLayer(string tensor) => _afterWeightLayer.Contains(tensor);

    /// <summary>Whether <paramref name="tensor"/> flows to a graph output through no other weight layer.</summary>
    public bool ReachesOutputDirectly(string tensor) => _reachesOutputDirectly.Contains(tensor);
}
