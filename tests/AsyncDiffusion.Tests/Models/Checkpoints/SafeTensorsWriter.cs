using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>One tensor to write: float values (stored in <see cref="DType"/>), integer values, or none (zeros; a sparse file).</summary>
internal sealed record FakeTensor(string Name, string DType, long[] Shape, float[]? Values = null, long[]? Integers = null)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    public long Bytes => Count * SafeTensorsWriter.Size(DType);
}

/// <summary>
/// Writes <c>.safetensors</c> files as the reference implementation does: compact JSON header with
/// <c>{"format":"pt"}</c> metadata, padded with spaces to 8 bytes, data in name order.
/// </summary>
internal static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<FakeTensor> tensors, bool sparse = false)
    {
        var list = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var t in list)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Bytes),
            };
            offset += t.Bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        if (sparse)
        {
            // Real names and sizes without real bytes: the file system stores no data for the hole.
            stream.SetLength(8 + padded + offset);
            return;
        }
        foreach (var t in list) stream.Write(Encode(t));
    }

    public static int Size(string dtype) => dtype switch { "F64" or "I64" => 8, "F32" or "I32" => 4, "F16" or "BF16" => 2, _ => 1 };

    private static byte[] Encode(FakeTensor t)
    {
        var bytes = new byte[t.Bytes];
        for (long i = 0; i < t.Count; i++)
        {
            var span = bytes.AsSpan((int)(i * Size(t.DType)));
            switch (t.DType)
            {
                case "I64": BinaryPrimitives.WriteInt64LittleEndian(span, t.Integers?[i] ?? 0); break;
                case "I32": BinaryPrimitives.WriteInt32LittleEndian(span, (int)(t.Integers?[i] ?? 0)); break;
                case "F32": BinaryPrimitives.WriteSingleLittleEndian(span, t.Values?[i] ?? 0); break;
                case "F16": BinaryPrimitives.WriteHalfLittleEndian(span, (Half)(t.Values?[i] ?? 0)); break;
                case "BF16": BinaryPrimitives.WriteUInt16LittleEndian(span, ToBFloat16(t.Values?[i] ?? 0)); break;
                default: throw new ArgumentException($"dtype {t.DType}");
            }
        }
        return bytes;
    }

    /// <summary>What a value becomes when stored in <paramref name="dtype"/> and read back.</summary>
    public static float Rounded(string dtype, float v) => dtype switch
    {
        "F16" => (float)(Half)v,
        "BF16" => BitConverter.Int32BitsToSingle(ToBFloat16(v) << 16),
        _ => v,
    };

    // Round to nearest even, as torch does when casting to bfloat16.
    private static ushort ToBFloat16(float v)
    {
        uint bits = (uint)BitConverter.SingleToInt32Bits(v);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
