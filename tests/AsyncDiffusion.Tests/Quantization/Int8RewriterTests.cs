using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Tests.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Quantization;

public class Int8RewriterTests(ITestOutputHelper log)
{
    private static OnnxGraph TinyUNet() => OnnxGraph.Load(Path.Combine(TinyModels.Folder(), "unet", "model.onnx"));

    [Fact]
    public void TinyUNetKeepsFirstAndLastConvolutionsAndTheTimeEmbeddingFloat()
    {
        var plan = LayerSelection.Plan(TinyUNet(), []);
        string Reason(string weight) => plan.Kept.Single(k => k.Layer.Weight == weight).Reason;
        Assert.StartsWith("first convolution", Reason("conv_in.weight"));
        Assert.StartsWith("last convolution", Reason("conv_out.weight"));
        Assert.StartsWith("time embedding", Reason("time_embedding.linear_1.weight"));
        Assert.StartsWith("time embedding", Reason("time_embedding.linear_2.weight"));
        Assert.StartsWith("time embedding", Reason("down_blocks.0.resnets.0.time_emb_proj.weight"));
        Assert.Contains(plan.Quantize, l => l.Weight == "down_blocks.0.resnets.0.conv1.weight");
        Assert.Contains(plan.Quantize, l => l.Weight == "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight");
        Assert.Contains(plan.Quantize, l => l.Weight == "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        // Attention products multiply two computed tensors: never candidates.
        Assert.All(plan.Quantize.Concat(plan.Kept.Select(k => k.Layer)), l => Assert.True(l.Weight.EndsWith(".weight"), l.Weight));
    }

    [Fact]
    public void ExcludePatternsKeepMatchingLayersFloat()
    {
        var plan = LayerSelection.Plan(TinyUNet(), ["*attn2*"]);
        var attn2 = plan.Kept.Where(k => k.Layer.Weight.Contains(".attn2.")).ToArray();
        Assert.NotEmpty(attn2);
        Assert.All(attn2, k => Assert.Equal("excluded by pattern '*attn2*'", k.Reason));
        Assert.DoesNotContain(plan.Quantize, l => l.Weight.Contains(".attn2."));
    }

    [Fact]
    public void QuantizedTinyUNetRunsCloseToFloatAndOrtKeepsNoFloatConvOrMatMulOutsideTheKeptSet()
    {
        var graph = TinyUNet();
        var plan = LayerSelection.Plan(graph, []);
        var collector = new CalibrationCollector(plan.CalibrationTensors);
        using (var calibration = OnnxModel.FromBytes(Int8Quantizer.CalibrationModel(graph, plan), "calibration", SessionSettings.Default))
        {
            calibration.Observer = collector;
            foreach (var t in new[] { 999f, 700f, 400f, 100f, 10f }) Run(calibration, t, seed: (int)t).Dispose();
        }
        Assert.Equal(5, collector.Runs);

        var record = Int8Quantizer.Apply(graph, "unet", plan, collector, ClippingMethod.MinError, "random inputs");
        Assert.Equal(plan.Quantize.Count, record.Layers.Count);
        Assert.All(record.Layers.Where(l => l.OpType == "Conv"), l => Assert.Equal("QLinearConv", l.QuantizedAs));
        Assert.All(record.Layers.Where(l => l.OpType == "MatMul"), l => Assert.Equal("DynamicQuantizeMatMul", l.QuantizedAs));
        Assert.All(record.Layers, l => Assert.True(l.WeightSqnrDb > 30, $"{l.Node}: weight SQNR {l.WeightSqnrDb:F1} dB"));

        // Bias Adds and the attention's query scale Mul were absorbed into the int8 linear layers.
        var linearOutputs = graph.Graph.Node.Where(n => n.OpType == Int8Rewriter.DynamicLinear).Select(n => n.Output[0]).ToHashSet();
        Assert.DoesNotContain(graph.Graph.Node, n => n.OpType is "Add" or "Mul" && n.Input.Any(linearOutputs.Contains) && n.Input.Any(graph.IsConstant));
        Assert.Contains(graph.Graph.Node, n => n.OpType == Int8Rewriter.DynamicLinear && n.Input.Count == 5); // with a bias

        using var fp32 = OnnxModel.FromBytes(TinyUNet().ToBytes(), "fp32", SessionSettings.Default);
        using var int8 = OnnxModel.FromBytes(graph.ToBytes(), "int8", SessionSettings.Default);
        foreach (var t in new[] { 999f, 500f, 50f })
        {
            using var a = Run(fp32, t, seed: 1000 + (int)t);
            using var b = Run(int8, t, seed: 1000 + (int)t);
            double snr = Snr(a[0].GetTensorDataAsSpan<float>(), b[0].GetTensorDataAsSpan<float>());
            log.WriteLine($"t={t}: output SNR {snr:F1} dB");
            Assert.True(snr > 20, $"t={t}: int8 output SNR {snr:F1} dB vs fp32");
        }

        using var dir = new TempFolder();
        var optimised = OrtGraphs.Optimised(graph.ToBytes(), Path.Combine(dir.Path, "optimised.onnx"));
        var (floatLayers, int8Layers) = OrtGraphs.CountWeightLayers(optimised);
        Assert.Equal(record.Kept.Count, floatLayers);
        Assert.Equal(record.Layers.Count, int8Layers);
    }

    private static IDisposableReadOnlyCollection<OrtValue> Run(OnnxModel model, float timestep, int seed)
    {
        var rng = new Random(seed);
        float[] Normal(int n) => Enumerable.Range(0, n).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()))).ToArray();
        var inputs = new[]
        {
            Tensors.Float(Normal(2 * 4 * 8 * 8), [2, 4, 8, 8], TensorElementType.Float),
            Tensors.Float([timestep], [], TensorElementType.Float),
            Tensors.Float(Normal(2 * 77 * 32), [2, 77, 32], TensorElementType.Float),
        };
        try
        {
            return model.Run(["sample", "timestep", "encoder_hidden_states"], inputs, ["out_sample"]);
        }
        finally
        {
            foreach (var v in inputs) v.Dispose();
        }
    }

    internal static double Snr(ReadOnlySpan<float> reference, ReadOnlySpan<float> test)
    {
        double signal = 0, noise = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            signal += (double)reference[i] * reference[i];
            noise += Math.Pow(reference[i] - test[i], 2);
        }
        return WeightQuantization.Decibels(signal, noise);
    }
}
