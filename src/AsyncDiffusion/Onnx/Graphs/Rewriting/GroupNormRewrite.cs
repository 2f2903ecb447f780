using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Replaces ONNX <c>GroupNormalization</c> (opset 18 and later) with the form torch exports use:
/// X [N, C, …] → Reshape [0, G, -1] → InstanceNormalization → (Reshape [0, C, -1] → Mul scale →
/// Add bias) → Reshape to X's shape. ONNX Runtime's CPU provider has no GroupNormalization kernel
/// and expands the function body instead (Casts, ReduceMean, Sub, Div, Sqrt, Mul, Add: ≈2–3 % of a
/// UNet step); InstanceNormalization has one. The maths is the same, so it applies with or without
/// attention fusion. Float32 graphs only, like <see cref="AttentionFusion"/>.
/// </summary>
internal static class GroupNormRewrite
{
    public const string Operator = "GroupNormalization";

    /// <summary>Rewrites every GroupNormalization whose scale and bias are constants of known shape; returns how many.</summary>
    public static int Apply(OnnxGraph graph)
    {
        long opset = graph.DefaultOpset;
        if (opset < 18 || graph.HasHalfPrecision) return 0; // GroupNormalization arrived in opset 18
        // GroupNormalization-21 made scale and bias per channel ([C]); versions 18–20 had them per group ([G]).
        bool perChannel = opset >= 21;
        var constants = new GraphConstants(graph, "groupnorm_const");

        var replacements = new Dictionary<NodeProto, IReadOnlyList<NodeProto>>();
        foreach (var node in graph.Graph.Node.Where(n => n.OpType == Operator && n.Domain is "" or "ai.onnx"))
        {
            if (Parameters(graph, node, perChannel) is not { } parameters) continue;
            var (groups, channels, epsilon) = parameters;
            string stem = OnnxGraph.NameOf(node);
            var nodes = new List<NodeProto>();
            string Op(string op, string[] inputs, string? output = null, AttributeProto? attribute = null)
            {
                var n = new NodeProto { OpType = op, Name = graph.Fresh($"{stem}_{op}"), Input = { inputs } };
                n.Output.Add(output ?? graph.Fresh($"{stem}_{op}_out"));
                if (attribute is not null) n.Attribute.Add(attribute);
                nodes.Add(n);
                return n.Output[0];
            }

            string x = node.Input[0], scale = node.Input[1], bias = node.Input[2];
            string shape = Op("Shape", [x]);
            string grouped = Op("Reshape", [x, constants.Int64s(0, groups, -1)]);
            // Per-group scale and bias (opsets 18–20) are InstanceNormalization's own; per-channel ones follow it.
            string normed = Op("InstanceNormalization", perChannel ? [grouped, constants.Filled(1f, groups), constants.Filled(0f, groups)] : [grouped, scale, bias],
                attribute: new AttributeProto { Name = "epsilon", Type = AttributeProto.Types.AttributeType.Float, F = epsilon });
            if (perChannel)
            {
                // [C] → [C, 1] broadcasts over [N, C, D1·D2·…] whatever X's rank; ONNX Runtime folds the Unsqueezes into constants.
                string axes = constants.Int64s(1);
                normed = Op("Reshape", [normed, constants.Int64s(0, channels, -1)]);
                normed = Op("Mul", [normed, Op("Unsqueeze", [scale, axes])]);
                normed = Op("Add", [normed, Op("Unsqueeze", [bias, axes])]);
            }
            Op("Reshape", [normed, shape], node.Output[0]);
            replacements[node] = nodes;
        }
        if (replacements.Count == 0) return 0;
        graph.ReplaceNodes(replacements);
        return replacements.Count;
    }

    /// <summary>
    /// The groups, channels and epsilon of a node the rewrite can take: scale and bias constants
    /// (initializers, perhaps still in external files: only their dims are read) of float32 and
    /// the shape the opset gives them, and statistics in float32 (stash_type 1, the default).
    /// </summary>
    private static (long Groups, long Channels, float Epsilon)? Parameters(OnnxGraph graph, NodeProto node, bool perChannel)
    {
        if (node.Input.Count != 3 || node.Output.Count != 1) return null;
        long groups = node.Attribute.FirstOrDefault(a => a.Name == "num_groups")?.I ?? 0;
        float epsilon = node.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
        long stash = node.Attribute.FirstOrDefault(a => a.Name == "stash_type")?.I ?? 1;
        if (groups <= 0 || stash != (long)TensorProto.Types.DataType.Float) return null;
        if (graph.ConstantTensor(node.Input[1]) is not { } scale || graph.ConstantTensor(node.Input[2]) is not { } bias) return null;
        if (!TensorData.IsFloat(scale) || !TensorData.IsFloat(bias) || scale.Dims.Count != 1 || !bias.Dims.SequenceEqual(scale.Dims)) return null;
        long length = scale.Dims[0];
        if (perChannel) return length > 0 && length % groups == 0 ? (groups, length, epsilon) : null;
        return length == groups ? (groups, 0, epsilon) : null;
    }
}
