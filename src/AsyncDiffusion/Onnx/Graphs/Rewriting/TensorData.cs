using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>Reading constant tensors as float32 and writing the typed tensors a rewrite adds.</summary>
internal static class TensorData
{
    public static long ElementCount(TensorProto t) => t.Dims.Aggregate(1L, (a, b) => a * b);

    public static bool IsFloat(TensorProto t) => (TensorProto.Types.DataType)t.DataType == TensorProto.Types.DataType.Float;

    /// <summary>The values of a float32 tensor, whether stored as raw bytes or in <c>float_data</c>.</summary>
    public static float[] Floats(TensorProto t)
    {
        if (!IsFloat(t)) throw new InvalidOperationException($"Tensor '{t.Name}' is {(TensorProto.Types.DataType)t.DataType}, not float32.");
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidOperationException($"Tensor '{t.Name}' still lives in an external file.");
        if (!t.RawData.IsEmpty) return MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        return t.FloatData.ToArray();
    }

    /// <summary>
    /// The values of a small numeric tensor (float, double or integer types) as doubles; null for
    /// other types and for data that still lives in an external file.
    /// </summary>
    public static double[]? Numbers(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External) return null;
        var raw = t.RawData.Span;
        return (TensorProto.Types.DataType)t.DataType switch
        {
            TensorProto.Types.DataType.Float => raw.IsEmpty ? t.FloatData.Select(v => (double)v).ToArray() : MemoryMarshal.Cast<byte, float>(raw).ToArray().Select(v => (double)v).ToArray(),
            TensorProto.Types.DataType.Double => raw.IsEmpty ? t.DoubleData.ToArray() : MemoryMarshal.Cast<byte, double>(raw).ToArray(),
            TensorProto.Types.DataType.Int64 => raw.IsEmpty ? t.Int64Data.Select(v => (double)v).ToArray() : MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => (double)v).ToArray(),
            TensorProto.Types.DataType.Int32 => raw.IsEmpty ? t.Int32Data.Select(v => (double)v).ToArray() : MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (double)v).ToArray(),
            _ => null,
        };
    }

    public static bool IsInteger(TensorProto t) => (TensorProto.Types.DataType)t.DataType is TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Int32;

    public static TensorProto Float(string name, long[] dims, ReadOnlySpan<float> values) =>
        Raw(name, TensorProto.Types.DataType.Float, dims, MemoryMarshal.AsBytes(values));

    public static TensorProto FloatScalar(string name, float value) => Float(name, [], [value]);

    public static TensorProto UInt8Scalar(string name, byte value) => Raw(name, TensorProto.Types.DataType.Uint8, [], [value]);

    public static TensorProto Int8(string name, long[] dims, ReadOnlySpan<sbyte> values) =>
        Raw(name, TensorProto.Types.DataType.Int8, dims, MemoryMarshal.AsBytes(values));

    public static TensorProto Int32(string name, long[] dims, ReadOnlySpan<int> values) =>
        Raw(name, TensorProto.Types.DataType.Int32, dims, MemoryMarshal.AsBytes(values));

    public static TensorProto Int64(string name, long[] dims, ReadOnlySpan<long> values) =>
        Raw(name, TensorProto.Types.DataType.Int64, dims, MemoryMarshal.AsBytes(values));

    private static TensorProto Raw(string name, TensorProto.Types.DataType type, long[] dims, ReadOnlySpan<byte> bytes)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }
}
