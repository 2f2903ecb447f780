using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Models;

/// <summary>Facts read from an ONNX file's protobuf without running it (for <c>models inspect</c>).</summary>
public static class OnnxGraphInfo
{
    /// <summary>Elements in the graph's floating-point initializers: the model's parameters.</summary>
    public static long ParameterCount(string path)
    {
        var model = OnnxStructureReader.Read(path);
        long total = 0;
        foreach (var t in model.Graph.Initializer)
        {
            var type = (TensorProto.Types.DataType)t.DataType;
            if (type is TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16)
            {
                long count = t.Dims.Aggregate(1L, (a, b) => a * b);
                if (count > 1) total += count; // scalars are constants, not parameters
            }
        }
        return total;
    }

    /// <summary>The distinct operator types of the graph's nodes.</summary>
    public static IReadOnlyList<string> OperatorTypes(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return ModelProto.Parser.ParseFrom(stream).Graph.Node.Select(n => n.OpType).Distinct().ToArray();
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new ModelFolderException($"'{path}' is not a readable ONNX protobuf ({e.Message}).");
        }
    }

    /// <summary>Elements of the graph's int8/uint8 weight matrices and kernels (rank 2 or more; per-channel zero points are not counted).</summary>
    public static long Int8ParameterCount(string path)
    {
        using var stream = File.OpenRead(path);
        var model = ModelProto.Parser.ParseFrom(stream);
        return model.Graph.Initializer
            .Where(t => (TensorProto.Types.DataType)t.DataType is TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8 && t.Dims.Count >= 2)
            .Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
    }

    /// <summary>External data files the graph refers to (e.g. weights.pb, model.onnx_data).</summary>
    public static IReadOnlyList<string> ExternalDataFiles(string path)
    {
        var model = OnnxStructureReader.Read(path);
        return model.Graph.Initializer
            .Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
            .SelectMany(t => t.ExternalData.Where(e => e.Key == "location").Select(e => e.Value))
            .Distinct().ToArray();
    }
}
