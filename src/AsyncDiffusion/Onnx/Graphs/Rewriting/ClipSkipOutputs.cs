using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Clip skip: exposes the hidden states of a CLIP text encoder's earlier layers, each through
/// the encoder's own final layer norm, as extra outputs. Clip skip N means the hidden state
/// N − 1 layers before the last (transformers' <c>hidden_states[-N]</c>) through
/// <c>final_layer_norm</c>: what AUTOMATIC1111 and ComfyUI compute.
/// <para>
/// Found by structure, so any export works (torch.onnx with decomposed LayerNorm, opset 17+
/// LayerNormalization, fp16 casts): walking back from the last hidden state through value-only
/// operations reaches the last residual Add — an Add whose two inputs both depend on the token
/// ids — whose output is the final norm's input. The residual stream before it is the chain of
/// such Adds, each reading its predecessor (the input that is an ancestor of the other input)
/// and a branch: attention (it holds a Softmax), then the MLP, two Adds per layer. Every node
/// between the final norm's input and the output is copied once per earlier layer, reading
/// that layer's output instead; the norm's weights and constants are shared.
/// </para>
/// </summary>
internal static class ClipSkipOutputs
{
    /// <summary>The output carrying the states for clip skip <paramref name="clipSkip"/> (2 or more).</summary>
    public static string OutputName(int clipSkip) => $"clip_skip_{clipSkip}";

    private static readonly HashSet<string> WeightLayers = ["MatMul", "Gemm", "Conv", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "Attention", "MultiHeadAttention"];

    /// <summary>Adds outputs <see cref="OutputName"/>(2 … layers); returns the encoder's number of layers.</summary>
    public static int Apply(OnnxGraph graph, string lastHiddenState)
    {
        var flow = new GraphFlow(graph, n => WeightLayers.Contains(n.OpType));
        bool Computed(string tensor) => tensor.Length > 0 && flow.InputsOf(tensor).Count > 0;
        bool IsResidualAdd(NodeProto? node) => node is { OpType: "Add", Input.Count: 2 } && Computed(node.Input[0]) && Computed(node.Input[1]);

        string normInput = FinalNormInput(graph, lastHiddenState, Computed, IsResidualAdd);
        var stream = ResidualStream(graph, normInput, Computed, IsResidualAdd);
        int adds = stream.Count - 1;
        if (adds < 2 || adds % 2 != 0)
            throw Unrecognised(graph, $"its residual stream has {adds} residual additions; a CLIP encoder layer has two (attention, MLP)");
        int layers = adds / 2;
        for (int k = 0; k < layers; k++)
            if (!BranchContains(graph, stream[2 * k], stream[2 * k + 1], "Softmax"))
                throw Unrecognised(graph, $"the first residual branch of layer {k + 1} has no Softmax; expected self-attention");

        var norm = NodesBetween(graph, normInput, lastHiddenState);
        var added = new List<NodeProto>();
        for (int skip = 2; skip <= layers; skip++)
        {
            // hidden_states[-skip] of transformers: the output of layer (layers + 1 − skip), s₀ being the embeddings.
            string tap = stream[2 * (layers + 1 - skip)];
            added.AddRange(Copy(graph, norm, normInput, tap, lastHiddenState, OutputName(skip)));
            graph.AddOutputLike(OutputName(skip), lastHiddenState);
        }
        graph.AppendNodes(added);
        return layers;
    }

    // Back from the output through value-only operations to the last residual Add's output.
    private static string FinalNormInput(OnnxGraph graph, string output, Func<string, bool> computed, Func<NodeProto?, bool> isResidualAdd)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal) { output };
        var pending = new Stack<string>([output]);
        bool normalises = false;
        while (pending.TryPop(out var tensor))
        {
            var producer = graph.Producer(tensor) ?? throw Unrecognised(graph, $"'{tensor}' comes straight from a graph input; expected a final layer norm after the encoder layers");
            if (isResidualAdd(producer))
            {
                found.Add(tensor);
                continue;
            }
            if (WeightLayers.Contains(producer.OpType))
                throw Unrecognised(graph, $"a {producer.OpType} ('{producer.Name}') lies between the last residual addition and '{output}'; expected only a layer norm");
            normalises |= producer.OpType is "LayerNormalization" or "ReduceMean" or "SimplifiedLayerNormalization";
            foreach (var input in producer.Input.Where(computed))
                if (seen.Add(input)) pending.Push(input);
        }
        if (found.Count != 1)
            throw Unrecognised(graph, found.Count == 0 ? "no residual addition was found before the output" : $"the output reads {found.Count} residual additions; expected one");
        if (!normalises) throw Unrecognised(graph, "no layer norm was found before the output");
        return found.First();
    }

    // [embeddings, layer 1 attention, layer 1 output, …, layer L output]: each residual Add reads its predecessor.
    private static List<string> ResidualStream(OnnxGraph graph, string last, Func<string, bool> computed, Func<NodeProto?, bool> isResidualAdd)
    {
        var stream = new List<string> { last };
        for (string tensor = last; graph.Producer(tensor) is { } add && isResidualAdd(add);)
        {
            string a = add.Input[0], b = add.Input[1];
            tensor = IsAncestor(graph, a, b, computed) ? a
                : IsAncestor(graph, b, a, computed) ? b
                : throw Unrecognised(graph, $"neither input of the residual addition '{add.Name}' feeds the other");
            stream.Add(tensor);
        }
        stream.Reverse();
        return stream;
    }

    // Whether `ancestor`'s values flow into `tensor`.
    private static bool IsAncestor(OnnxGraph graph, string ancestor, string tensor, Func<string, bool> computed)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { tensor };
        var pending = new Stack<string>([tensor]);
        while (pending.TryPop(out var t))
        {
            if (t == ancestor) return true;
            if (graph.Producer(t) is not { } producer) continue;
            foreach (var input in producer.Input.Where(computed))
                if (seen.Add(input)) pending.Push(input);
        }
        return false;
    }

    // Whether the branch the residual Add producing `sum` adds to `from` holds an operator of type `opType`.
    private static bool BranchContains(OnnxGraph graph, string from, string sum, string opType) =>
        NodesBetween(graph, from, sum).Any(n => n.OpType == opType);

    /// <summary>The nodes that read <paramref name="from"/> (directly or not) and feed <paramref name="to"/>, in graph order.</summary>
    private static List<NodeProto> NodesBetween(OnnxGraph graph, string from, string to)
    {
        var downstream = new HashSet<string>(StringComparer.Ordinal) { from };
        var between = new List<NodeProto>();
        var feeds = Upstream(graph, to);
        foreach (var node in graph.Graph.Node)
        {
            if (!node.Input.Any(downstream.Contains)) continue;
            foreach (var o in node.Output) downstream.Add(o);
            if (feeds.Contains(node)) between.Add(node);
        }
        return between;
    }

    private static HashSet<NodeProto> Upstream(OnnxGraph graph, string tensor)
    {
        var nodes = new HashSet<NodeProto>();
        var pending = new Stack<string>([tensor]);
        while (pending.TryPop(out var t))
            if (graph.Producer(t) is { } producer && nodes.Add(producer))
                foreach (var input in producer.Input.Where(i => i.Length > 0)) pending.Push(input);
        return nodes;
    }

    // The norm's nodes again, reading `tap` instead of `normInput`; the copy of `output` is named `renamed`.
    private static IEnumerable<NodeProto> Copy(OnnxGraph graph, List<NodeProto> norm, string normInput, string tap, string output, string renamed)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal) { [normInput] = tap };
        foreach (var node in norm)
        {
            var copy = node.Clone();
            copy.Name = graph.Fresh($"{renamed}_{node.OpType}");
            for (int i = 0; i < copy.Input.Count; i++)
                if (names.TryGetValue(copy.Input[i], out var name)) copy.Input[i] = name;
            for (int i = 0; i < copy.Output.Count; i++)
                if (copy.Output[i].Length > 0)
                    copy.Output[i] = names[node.Output[i]] = node.Output[i] == output ? renamed : graph.Fresh($"{renamed}_{node.OpType}_out");
            yield return copy;
        }
    }

    private static ModelFolderException Unrecognised(OnnxGraph graph, string why) =>
        new($"'{graph.Source}': clip skip needs a CLIP text encoder whose layers and final layer norm can be found, but {why}.");
}
