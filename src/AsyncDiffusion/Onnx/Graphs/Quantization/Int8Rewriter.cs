using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>
/// Rewrites a planned graph to int8, in the forms ONNX Runtime's CPU kernels run fastest
/// (measured on this project's machines: ≈3.9× fp32 for QLinearConv, ≈3.5× for
/// DynamicQuantizeMatMul; MatMulNBits at 8 bits was no faster than fp32 at SD's shapes):
/// <list type="bullet">
/// <item>Conv → QuantizeLinear (u8, per tensor, shared by every conv reading the same tensor)
/// → QLinearConv (s8 weights per output channel, int32 bias) → DequantizeLinear (u8, per tensor)
/// back to the original output name. Explicit QLinearConv nodes, not QDQ pairs around a float
/// Conv, so nothing depends on ONNX Runtime's QDQ fusion rules. Where an input's range varies
/// widely between calibration calls (a diffusion UNet's residual stream grows and shrinks
/// over a trajectory), DynamicQuantizeLinear sets its scale per call instead, and the
/// output's scale and the int32 bias follow it.</item>
/// <item>MatMul/Gemm → com.microsoft.DynamicQuantizeMatMul (s8 weights per output column),
/// absorbing a following bias Add and scale Mul into the node.</item>
/// </list>
/// Downstream nodes keep reading the original tensor names, so the rest of the graph is untouched.
/// </summary>
internal static class Int8Rewriter
{
    public const string StaticConv = "QLinearConv";
    public const string DynamicLinear = "DynamicQuantizeMatMul";
    private const string Microsoft = "com.microsoft";

    /// <summary>
    /// Applies <paramref name="plan"/>. Convolutions without a calibrated range for their input
    /// or output stay float (listed as kept); <paramref name="ranges"/> may be empty for graphs
    /// with only linear layers.
    /// </summary>
    public static (IReadOnlyList<QuantizedLayer> Layers, IReadOnlyList<KeptLayer> Kept) Rewrite(
        OnnxGraph graph, QuantizationPlan plan, IReadOnlyDictionary<string, ActivationHistogram> ranges, ClippingMethod clipping)
    {
        if (graph.DefaultOpset < 10)
            throw new AsyncDiffusionException($"'{graph.Source}' uses ONNX opset {graph.DefaultOpset}; int8 operators need opset 10 or later. Re-export the model with a newer exporter.");

        var replacements = new Dictionary<NodeProto, IReadOnlyList<NodeProto>>();
        var quantizedInputs = new Dictionary<string, QuantizedInput>(StringComparer.Ordinal);
        var layers = new List<QuantizedLayer>();
        var kept = plan.Kept.Select(k => new KeptLayer(k.Layer.Name, k.Layer.OpType, k.Layer.Weight, k.Reason)).ToList();
        bool usesMicrosoft = false;

        foreach (var layer in plan.Quantize)
        {
            if (layer.IsConv)
            {
                var input = ranges.GetValueOrDefault(layer.Input);
                var output = ranges.GetValueOrDefault(layer.Output);
                if (input is not { Count: > 0 } || output is not { Count: > 0 })
                {
                    kept.Add(new KeptLayer(layer.Name, layer.OpType, layer.Weight, "no calibration data reached it"));
                    continue;
                }
                var (nodes, record) = Conv(graph, layer, input, output, clipping, quantizedInputs);
                replacements[layer.Node] = nodes;
                layers.Add(record);
            }
            else
            {
                var (nodes, record, absorbed) = Linear(graph, layer);
                replacements[layer.Node] = nodes;
                foreach (var node in absorbed) replacements[node] = [];
                layers.Add(record);
                usesMicrosoft = true;
            }
        }

        if (usesMicrosoft) graph.RequireOpset(Microsoft, 1);
        graph.ReplaceNodes(replacements);
        return (layers, kept);
    }

    private static (IReadOnlyList<NodeProto>, QuantizedLayer) Conv(OnnxGraph graph, WeightLayer layer, ActivationHistogram inputStats,
        ActivationHistogram outputStats, ClippingMethod clipping, Dictionary<string, QuantizedInput> quantizedInputs)
    {
        var weightTensor = graph.ConstantTensor(layer.Weight)!;
        var dims = weightTensor.Dims.ToArray();
        int cout = (int)dims[0];
        int perChannel = (int)(TensorData.ElementCount(weightTensor) / cout);
        var weights = WeightQuantization.PerChannel(TensorData.Floats(weightTensor), 1, cout, perChannel);
        bool perCall = inputStats.CallRangeSpread > PerCallSpread && graph.DefaultOpset >= 11; // DynamicQuantizeLinear and Round: opset 11
        var inRange = inputStats.Choose(clipping);
        var outRange = outputStats.Choose(clipping);
        string prefix = layer.Weight;
        var nodes = new List<NodeProto>();

        // One quantization per activation tensor, shared by every conv that reads it.
        if (!quantizedInputs.TryGetValue(layer.Input, out var x))
        {
            if (perCall)
            {
                x = new QuantizedInput(graph.Fresh($"{layer.Input}_quantized"), graph.Fresh($"{layer.Input}_scale"), graph.Fresh($"{layer.Input}_zero_point"));
                nodes.Add(Node("DynamicQuantizeLinear", "", [layer.Input], [x.Tensor, x.Scale, x.ZeroPoint], graph.Fresh($"{layer.Name}_quantize_input")));
            }
            else
            {
                x = new QuantizedInput(graph.Fresh($"{layer.Input}_quantized"),
                    graph.AddInitializer(TensorData.FloatScalar(graph.Fresh($"{layer.Input}_scale"), inRange.Scale)),
                    graph.AddInitializer(TensorData.UInt8Scalar(graph.Fresh($"{layer.Input}_zero_point"), inRange.ZeroPoint)));
                nodes.Add(Node("QuantizeLinear", "", [layer.Input, x.Scale, x.ZeroPoint], [x.Tensor], graph.Fresh($"{layer.Name}_quantize_input")));
            }
            quantizedInputs[layer.Input] = x;
        }

        string wq = graph.AddInitializer(TensorData.Int8(graph.Fresh($"{prefix}_int8"), dims, weights.Values));
        string ws = graph.AddInitializer(TensorData.Float(graph.Fresh($"{prefix}_scale"), [cout], weights.Scales));
        string wz = graph.AddInitializer(TensorData.Int8(graph.Fresh($"{prefix}_zero_point"), [cout], new sbyte[cout]));
        string yz = graph.AddInitializer(TensorData.UInt8Scalar(graph.Fresh($"{layer.Output}_zero_point"), outRange.ZeroPoint));
        float outputScale = perCall ? OutputPerInputScale(inputStats, outputStats) : outRange.Scale;
        string ys;
        if (perCall)
        {
            // A convolution is linear: an input k times larger gives an output k times larger, so the
            // output's scale follows the input's per-call scale by the largest ratio calibration saw.
            ys = graph.Fresh($"{layer.Output}_scale");
            nodes.Add(Node("Mul", "", [x.Scale, graph.AddInitializer(TensorData.FloatScalar(graph.Fresh($"{layer.Output}_scale_factor"), outputScale))], [ys],
                graph.Fresh($"{layer.Name}_output_scale")));
        }
        else ys = graph.AddInitializer(TensorData.FloatScalar(graph.Fresh($"{layer.Output}_scale"), outputScale));

        var inputs = new List<string> { x.Tensor, x.Scale, x.ZeroPoint, wq, ws, wz, ys, yz };
        if (layer.Bias is not null)
        {
            var bias = TensorData.Floats(graph.ConstantTensor(layer.Bias)!);
            if (perCall) inputs.Add(RuntimeBias(graph, layer, bias, x.Scale, ws, nodes));
            else
            {
                var q = new int[bias.Length];
                for (int c = 0; c < q.Length; c++)
                    q[c] = (int)Math.Clamp(Math.Round(bias[c] / ((double)inRange.Scale * weights.Scales[c]), MidpointRounding.ToEven), int.MinValue, int.MaxValue);
                inputs.Add(graph.AddInitializer(TensorData.Int32(graph.Fresh($"{prefix}_bias_int32"), [cout], q)));
            }
        }
        string yq = graph.Fresh($"{layer.Output}_quantized");
        var conv = Node(StaticConv, "", inputs.ToArray(), [yq], graph.Fresh($"{layer.Name}_int8"));
        conv.Attribute.AddRange(layer.Node.Attribute.Select(a => a.Clone()));
        nodes.Add(conv);
        nodes.Add(Node("DequantizeLinear", "", [yq, ys, yz], [layer.Output], graph.Fresh($"{layer.Name}_dequantize_output")));

        string mode = perCall ? ActivationModes.PerCall : ActivationModes.Static;
        var record = new QuantizedLayer(layer.Name, layer.OpType, layer.Weight, StaticConv, weights.Scales, weights.SqnrDb,
            Activation(layer.Input, mode, perCall ? 0 : inRange.Scale, perCall ? (byte)0 : inRange.ZeroPoint, inRange, inputStats),
            Activation(layer.Output, mode, outputScale, outRange.ZeroPoint, outRange, outputStats));
        return (nodes, record);
    }

    /// <summary>Inputs whose calibration calls span a wider ratio of ranges than this get per-call scales (a fixed one would waste 2 bits or more on the smallest calls).</summary>
    public const double PerCallSpread = 4;

    // The largest output-to-input range ratio over the calibration calls.
    private static float OutputPerInputScale(ActivationHistogram input, ActivationHistogram output)
    {
        static double Width((float Min, float Max) c) => (double)Math.Max(c.Max, 0) - Math.Min(c.Min, 0);
        var inputs = input.Calls;
        var outputs = output.Calls;
        double ratio = 0;
        for (int i = 0; i < Math.Min(inputs.Count, outputs.Count); i++)
            if (Width(inputs[i]) > 0) ratio = Math.Max(ratio, Width(outputs[i]) / Width(inputs[i]));
        return ratio > 0 ? (float)ratio : 1f;
    }

    // QLinearConv's int32 bias is in units of input scale × weight scale, so with a per-call input scale it is computed per call (Cout values).
    private static string RuntimeBias(OnnxGraph graph, WeightLayer layer, float[] bias, string inputScale, string weightScales, List<NodeProto> nodes)
    {
        string b = graph.AddInitializer(TensorData.Float(graph.Fresh($"{layer.Weight}_bias"), [bias.Length], bias));
        string tiny = graph.AddInitializer(TensorData.FloatScalar(graph.Fresh($"{layer.Weight}_bias_scale_floor"), 1e-30f));
        string unit = graph.Fresh($"{layer.Weight}_bias_unit"), safe = graph.Fresh($"{layer.Weight}_bias_unit_safe");
        string scaled = graph.Fresh($"{layer.Weight}_bias_scaled"), rounded = graph.Fresh($"{layer.Weight}_bias_rounded"), q = graph.Fresh($"{layer.Weight}_bias_int32");
        nodes.Add(Node("Mul", "", [inputScale, weightScales], [unit], graph.Fresh($"{layer.Name}_bias_unit")));
        nodes.Add(Node("Max", "", [unit, tiny], [safe], graph.Fresh($"{layer.Name}_bias_unit_safe"))); // an all-zero input has scale 0
        nodes.Add(Node("Div", "", [b, safe], [scaled], graph.Fresh($"{layer.Name}_bias_scale")));
        nodes.Add(Node("Round", "", [scaled], [rounded], graph.Fresh($"{layer.Name}_bias_round")));
        var cast = Node("Cast", "", [rounded], [q], graph.Fresh($"{layer.Name}_bias_cast"));
        cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Int32 });
        nodes.Add(cast);
        return q;
    }

    private static ActivationQuantization Activation(string tensor, string mode, float scale, byte zeroPoint, ActivationRange range, ActivationHistogram stats) =>
        new(tensor, mode, scale, zeroPoint, stats.Min, stats.Max, range.Low, range.High, Math.Round(stats.CallRangeSpread, 2));

    private static (IReadOnlyList<NodeProto>, QuantizedLayer, IReadOnlyList<NodeProto> Absorbed) Linear(OnnxGraph graph, WeightLayer layer)
    {
        var weightTensor = graph.ConstantTensor(layer.Weight)!;
        var w = TensorData.Floats(weightTensor);
        int rows = (int)weightTensor.Dims[0], cols = (int)weightTensor.Dims[1];
        float[]? bias = null;
        if (layer.OpType == "Gemm")
        {
            float alpha = layer.Node.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 1f;
            float beta = layer.Node.Attribute.FirstOrDefault(a => a.Name == "beta")?.F ?? 1f;
            if ((layer.Node.Attribute.FirstOrDefault(a => a.Name == "transB")?.I ?? 0) != 0)
            {
                w = Transpose(w, rows, cols);
                (rows, cols) = (cols, rows);
            }
            if (alpha != 1f) for (int i = 0; i < w.Length; i++) w[i] *= alpha;
            if (layer.Bias is not null) bias = TensorData.Floats(graph.ConstantTensor(layer.Bias)!).Select(b => b * beta).ToArray();
        }

        // What exporters write after a linear layer and the int8 kernel can do itself: a bias Add,
        // and a scale Mul (attention's 1/√d on the queries), which float graphs fuse into the MatMul.
        string output = layer.Output;
        var absorbed = new List<NodeProto>();
        while (layer.OpType == "MatMul" && Absorbable(graph, output, cols) is { } next)
        {
            if (next.Scale is float scale)
            {
                for (int i = 0; i < w.Length; i++) w[i] *= scale;
                if (bias is not null) for (int i = 0; i < bias.Length; i++) bias[i] *= scale;
            }
            else
            {
                bias ??= new float[cols];
                for (int i = 0; i < cols; i++) bias[i] += next.Bias![i];
            }
            absorbed.Add(next.Node);
            output = next.Node.Output[0];
        }
        var weights = WeightQuantization.PerChannel(w, rows, cols, 1);

        string prefix = layer.Weight;
        var inputs = new List<string>
        {
            layer.Input,
            graph.AddInitializer(TensorData.Int8(graph.Fresh($"{prefix}_int8"), [rows, cols], weights.Values)),
            graph.AddInitializer(TensorData.Float(graph.Fresh($"{prefix}_scale"), [cols], weights.Scales)),
            graph.AddInitializer(TensorData.Int8(graph.Fresh($"{prefix}_zero_point"), [cols], new sbyte[cols])),
        };
        if (bias is not null) inputs.Add(graph.AddInitializer(TensorData.Float(graph.Fresh($"{prefix}_bias"), [cols], bias)));
        var node = Node(DynamicLinear, Microsoft, inputs.ToArray(), [output], graph.Fresh($"{layer.Name}_int8"));
        return ([node], new QuantizedLayer(layer.Name, layer.OpType, layer.Weight, DynamicLinear, weights.Scales, weights.SqnrDb, null, null), absorbed);
    }

    // The only consumer of a linear layer's output, when it is an Add of a 1-D [N] constant or a Mul by a scalar constant.
    private static (NodeProto Node, float[]? Bias, float? Scale)? Absorbable(OnnxGraph graph, string output, int columns)
    {
        if (graph.GraphOutputs.Contains(output)) return null;
        var consumers = graph.Consumers(output);
        if (consumers.Count != 1 || consumers[0] is not { OpType: "Add" or "Mul", Domain: "" or "ai.onnx" } op || op.Input.Count != 2) return null;
        string other = op.Input[0] == output ? op.Input[1] : op.Input[0];
        if (other == output || graph.ConstantTensor(other) is not { } tensor || !TensorData.IsFloat(tensor)) return null;
        if (op.OpType == "Mul")
            // Only a true scalar: a [1, 1, 1] one would also broadcast the output to a higher rank.
            return tensor.Dims.Count == 0 || (tensor.Dims.Count == 1 && tensor.Dims[0] == 1) ? (op, null, TensorData.Floats(tensor)[0]) : null;
        // Only a 1-D bias, for the same reason.
        return tensor.Dims.Count == 1 && tensor.Dims[0] == columns ? (op, TensorData.Floats(tensor), null) : null;
    }

    private sealed record QuantizedInput(string Tensor, string Scale, string ZeroPoint);

    private static float[] Transpose(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
        return t;
    }

    private static NodeProto Node(string op, string domain, string[] inputs, string[] outputs, string name)
    {
        var node = new NodeProto { OpType = op, Domain = domain, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }
}
