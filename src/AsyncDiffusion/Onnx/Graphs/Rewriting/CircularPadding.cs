using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Seamless tiling: every 2-D convolution that pads its input (Conv, QLinearConv, ConvInteger
/// with explicit <c>pads</c>) reads a circularly padded input instead, so the image's left edge
/// continues its right edge and its top its bottom (PyTorch's <c>padding_mode="circular"</c>,
/// which AUTOMATIC1111's tiling sets on every Conv2d of the UNet and the VAE). The convolution
/// keeps its kernel, strides and dilations and gets zero pads; padding done outside convolutions
/// (the VAE encoder's explicit zero Pad before its stride-2 convolutions) is left alone, as in A1111.
/// <para>
/// The wrap is a <c>Pad</c> in <c>wrap</c> mode where the model's opset has it (19 and later);
/// older models, whose other operators must keep their opset, get the same values from two
/// <c>Slice</c>s and a <c>Concat</c> per padded axis (identical results on ONNX Runtime 1.31).
/// </para>
/// </summary>
internal static class CircularPadding
{
    private static readonly HashSet<string> Convolutions = ["Conv", "QLinearConv", "ConvInteger"];

    /// <summary>Rewrites the graph, failing when no convolution pads its input (there would be nothing to tile).</summary>
    public static void ApplyOrFail(OnnxGraph graph)
    {
        if (Apply(graph) == 0)
            throw new ModelFolderException($"'{graph.Source}' has no padded 2-D convolution to make circular; seamless tiling needs a UNet and VAE with Conv layers that pad (any SD export).");
    }

    /// <summary>Rewrites the graph; returns how many convolutions now pad circularly.</summary>
    public static int Apply(OnnxGraph graph)
    {
        bool padWrap = graph.DefaultOpset >= 19;
        var replacements = new Dictionary<NodeProto, IReadOnlyList<NodeProto>>();
        var constants = new GraphConstants(graph, "circular_const");
        var padded = new Dictionary<string, string>(StringComparer.Ordinal); // input and pads → its wrapped copy, shared by convolutions reading the same
        foreach (var conv in graph.Graph.Node)
        {
            if (!Convolutions.Contains(conv.OpType) || conv.Domain is not ("" or "ai.onnx")) continue;
            if (conv.Attribute.FirstOrDefault(a => a.Name == "auto_pad") is { } auto && auto.S.ToStringUtf8() is not ("" or "NOTSET" or "VALID"))
                continue; // SAME_* pads depend on the input's size; torch and optimum exports write explicit pads
            var pads = conv.Attribute.FirstOrDefault(a => a.Name == "pads");
            if (pads is null || pads.Ints.Count != 4 || pads.Ints.All(p => p == 0)) continue;
            long top = pads.Ints[0], left = pads.Ints[1], bottom = pads.Ints[2], right = pads.Ints[3];

            var nodes = new List<NodeProto>();
            string key = $"{conv.Input[0]}|{top},{left},{bottom},{right}";
            if (!padded.TryGetValue(key, out var wrapped))
                padded[key] = wrapped = padWrap
                    ? Wrap(graph, conv.Input[0], top, left, bottom, right, nodes, constants)
                    : Concatenate(graph, Concatenate(graph, conv.Input[0], 3, left, right, nodes, constants), 2, top, bottom, nodes, constants);
            var rewritten = conv.Clone();
            rewritten.Input[0] = wrapped;
            var zero = rewritten.Attribute.First(a => a.Name == "pads");
            zero.Ints.Clear();
            zero.Ints.AddRange([0, 0, 0, 0]);
            nodes.Add(rewritten);
            replacements[conv] = nodes;
        }
        if (replacements.Count > 0) graph.ReplaceNodes(replacements);
        return replacements.Count;
    }

    // Pad-19 wrap: pads are [N, C, H, W] begins then ends.
    private static string Wrap(OnnxGraph graph, string input, long top, long left, long bottom, long right, List<NodeProto> nodes, GraphConstants constants)
    {
        string output = graph.Fresh(input + "_wrapped");
        var pad = new NodeProto { OpType = "Pad", Name = graph.Fresh("circular_pad"), Input = { input, constants.Int64s(0, 0, top, left, 0, 0, bottom, right) }, Output = { output } };
        pad.Attribute.Add(new AttributeProto { Name = "mode", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8("wrap") });
        nodes.Add(pad);
        return output;
    }

    // [last `before` entries, input, first `after` entries] along one axis.
    private static string Concatenate(OnnxGraph graph, string input, long axis, long before, long after, List<NodeProto> nodes, GraphConstants constants)
    {
        if (before == 0 && after == 0) return input;
        var parts = new List<string>();
        if (before > 0) parts.Add(Slice(graph, input, constants.Int64s(-before), constants.Int64s(long.MaxValue), axis, nodes, constants));
        parts.Add(input);
        if (after > 0) parts.Add(Slice(graph, input, constants.Int64s(0), constants.Int64s(after), axis, nodes, constants));
        string output = graph.Fresh(input + "_wrapped");
        var concat = new NodeProto { OpType = "Concat", Name = graph.Fresh("circular_concat"), Output = { output } };
        concat.Input.AddRange(parts);
        concat.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = axis });
        nodes.Add(concat);
        return output;
    }

    private static string Slice(OnnxGraph graph, string input, string starts, string ends, long axis, List<NodeProto> nodes, GraphConstants constants)
    {
        string output = graph.Fresh(input + "_edge");
        nodes.Add(new NodeProto { OpType = "Slice", Name = graph.Fresh("circular_slice"), Input = { input, starts, ends, constants.Int64s(axis) }, Output = { output } });
        return output;
    }
}
