using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;

namespace AsyncDiffusion.Tests.Rewriting;

/// <summary>Runs a graph on seeded inputs of given shapes and compares graphs' outputs.</summary>
internal static class GraphRuns
{
    /// <summary>Every output of <paramref name="model"/> on seeded inputs: normal floats, or token ids below 100 for integer inputs.</summary>
    public static float[][] Run(byte[] model, IReadOnlyDictionary<string, long[]> shapes, int seed = 1)
    {
        using var onnx = OnnxModel.FromBytes(model, "graph", SessionSettings.Default);
        return Run(onnx.InputNames, onnx.Inputs, inputs => onnx.Run(onnx.InputNames, inputs, onnx.OutputNames), shapes, seed);
    }

    /// <summary>The same for a session already made (from a model file, with its external data).</summary>
    public static float[][] Run(InferenceSession session, IReadOnlyDictionary<string, long[]> shapes, int seed = 1)
    {
        using var options = new RunOptions();
        return Run(session.InputNames, session.InputMetadata, inputs => session.Run(options, session.InputNames, inputs, session.OutputNames), shapes, seed);
    }

    private static float[][] Run(IReadOnlyList<string> names, IReadOnlyDictionary<string, NodeMetadata> metadata,
        Func<IReadOnlyList<OrtValue>, IDisposableReadOnlyCollection<OrtValue>> run, IReadOnlyDictionary<string, long[]> shapes, int seed)
    {
        var rng = new Random(seed);
        var inputs = new List<OrtValue>();
        try
        {
            foreach (string name in names)
            {
                long[] shape = shapes[name];
                int count = (int)shape.Aggregate(1L, (a, b) => a * b);
                var type = metadata[name].ElementDataType;
                inputs.Add(type is TensorElementType.Int32 or TensorElementType.Int64
                    ? Tensors.Ids(Enumerable.Range(0, count).Select(_ => rng.Next(2, 100)).ToArray(), shape, type)
                    : Tensors.Float(Enumerable.Range(0, count).Select(_ => Normal(rng)).ToArray(), shape, type));
            }
            using var outputs = run(inputs);
            return outputs.Select(Tensors.ToFloats).ToArray();
        }
        finally
        {
            foreach (var i in inputs) i.Dispose();
        }
    }

    /// <summary>The largest difference between two outputs, relative to the largest magnitude of the first.</summary>
    public static double RelativeError(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs(v)), worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        return worst / Math.Max(scale, 1e-30);
    }

    public static int NodeCount(byte[] model) => ModelProto.Parser.ParseFrom(model).Graph.Node.Count;

    public static int Count(byte[] model, string opType) => ModelProto.Parser.ParseFrom(model).Graph.Node.Count(n => n.OpType == opType);

    private static float Normal(Random rng) => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
}
