using AsyncDiffusion.Compression;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Quantization;

/// <summary>
/// Real torch.onnx exports (pyke's tiny SD components, opset 15): the structural rewriter must
/// find their layers (Cast before every Conv, MatMul + Add linears, weights named onnx::MatMul_…),
/// and the int8 graphs must run and stay close to the float ones.
/// </summary>
public class PykeExportTests(ITestOutputHelper log)
{
    public static TheoryData<string, int, int, double> Components() => new()
    {
        // component, int8 convolutions and linear layers expected, least output SNR (measured: 36.5 and 32.6, 25.0, 41.7 dB)
        { "text_encoder", 0, 30, 30 },
        { "vae_decoder", 14, 4, 22 },
        { "vae_encoder", 10, 4, 35 },
    };

    [Theory]
    [MemberData(nameof(Components))]
    public void TorchExportsQuantizeAndRunCloseToFloat(string component, int convolutions, int linears, double leastSnrDb)
    {
        string path = SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", component, "model.onnx");
        var graph = OnnxGraph.Load(path);
        var plan = LayerSelection.Plan(graph, []);
        var collector = new CalibrationCollector(plan.CalibrationTensors);
        using (var calibration = OnnxModel.FromBytes(Seeded(Int8Quantizer.CalibrationModel(graph, plan)), "calibration", SessionSettings.Default))
        {
            calibration.Observer = collector;
            for (int i = 0; i < 6; i++) Run(calibration, component, seed: i).Dispose();
        }
        var record = Int8Quantizer.Apply(graph, component, plan, collector, ClippingMethod.MinError, "random inputs");
        foreach (var k in record.Kept) log.WriteLine($"kept {k.Node}: {k.Reason}");
        Assert.Equal(convolutions, record.Convolutions);
        Assert.Equal(linears, record.Linears);

        using var fp32 = OnnxModel.FromBytes(Seeded(OnnxGraph.Load(path).ToBytes()), "fp32", SessionSettings.Default);
        using var int8 = OnnxModel.FromBytes(Seeded(graph.ToBytes()), "int8", SessionSettings.Default);
        using var a = Run(fp32, component, seed: 100);
        using var b = Run(int8, component, seed: 100);
        for (int o = 0; o < a.Count; o++)
        {
            double snr = SignalComparison.SnrDb(a[o].GetTensorDataAsSpan<float>(), b[o].GetTensorDataAsSpan<float>());
            log.WriteLine($"{component} output {fp32.OutputNames[o]}: SNR {snr:F1} dB");
            Assert.True(snr >= leastSnrDb, $"{component} output {fp32.OutputNames[o]}: int8 SNR {snr:F1} dB vs fp32, expected at least {leastSnrDb}");
        }

        using var dir = new TempFolder();
        var (floatLayers, int8Layers) = OrtGraphs.CountWeightLayers(OrtGraphs.Optimised(graph.ToBytes(), Path.Combine(dir.Path, "optimised.onnx")));
        Assert.Equal(record.Kept.Count, floatLayers);
        Assert.Equal(record.Layers.Count, int8Layers);
    }

    // The VAE encoder samples inside the graph with an unseeded RandomNormalLike: seed it, so both graphs draw the same noise.
    private static byte[] Seeded(byte[] model)
    {
        var graph = OnnxGraph.FromBytes(model, "seeded");
        foreach (var node in graph.Graph.Node.Where(n => n.OpType == "RandomNormalLike"))
        {
            if (node.Attribute.FirstOrDefault(a => a.Name == "seed") is { } old) node.Attribute.Remove(old);
            node.Attribute.Add(new global::Onnx.AttributeProto { Name = "seed", Type = global::Onnx.AttributeProto.Types.AttributeType.Float, F = 1 });
        }
        return graph.ToBytes();
    }

    private static IDisposableReadOnlyCollection<OrtValue> Run(OnnxModel model, string component, int seed)
    {
        var rng = new Random(seed);
        float Normal() => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        OrtValue input = component switch
        {
            "text_encoder" => Tensors.Ids(Enumerable.Range(0, 77).Select(i => i == 0 ? 0 : i < 12 ? rng.Next(2, 1000) : 1).ToArray(), [1, 77], TensorElementType.Int32),
            "vae_decoder" => Tensors.Float(Enumerable.Range(0, 4 * 32 * 32).Select(_ => Normal()).ToArray(), [1, 4, 32, 32], TensorElementType.Float),
            _ => Tensors.Float(Enumerable.Range(0, 3 * 64 * 64).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), [1, 3, 64, 64], TensorElementType.Float),
        };
        using (input) return model.Run([model.InputNames[0]], [input], model.OutputNames);
    }
}
