using Onnx;

namespace AsyncDiffusion.Onnx.Graphs;

/// <summary>
/// Reads an ONNX file's structure (nodes, shapes, small constants) without its weights: the
/// protobuf is walked as a stream and the data of large initializers is skipped, so inspecting
/// a 500 MB text encoder costs kilobytes instead of a second copy of its weights in memory.
/// </summary>
public static class OnnxStructureReader
{
    // Field numbers of onnx.proto3 on the way to initializer data.
    private const int ModelGraph = 7, GraphInitializer = 5;
    private static readonly HashSet<int> TensorDataFields = [4, 5, 6, 7, 9, 10, 11]; // float/int32/string/int64/raw/double/uint64 data

    /// <summary>The model with every initializer's data dropped when it is larger than <paramref name="keepDataUpTo"/> bytes (dims, names, types stay).</summary>
    public static ModelProto Read(string path, int keepDataUpTo = 4096)
    {
        using var input = new BufferedStream(File.OpenRead(path), 1 << 16);
        var filtered = new MemoryStream();
        try
        {
            Copy(input, input.Length, Level.Model, filtered, keepDataUpTo);
            filtered.Position = 0;
            return ModelProto.Parser.ParseFrom(filtered);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new ModelFolderException($"'{path}' is not a readable ONNX protobuf ({e.Message}).");
        }
    }

    private enum Level { Model, Graph, Tensor, Other }

    private static void Copy(Stream input, long end, Level level, Stream output, int keep)
    {
        while (input.Position < end)
        {
            ulong tag = ReadVarint(input);
            int field = (int)(tag >> 3), wire = (int)(tag & 7);
            switch (wire)
            {
                case 0:
                    WriteVarint(output, tag);
                    WriteVarint(output, ReadVarint(input));
                    break;
                case 1:
                case 5:
                    WriteVarint(output, tag);
                    CopyBytes(input, output, wire == 1 ? 8 : 4);
                    break;
                case 2:
                    long length = (long)ReadVarint(input);
                    if (length < 0 || input.Position + length > end) throw new InvalidDataException($"a field of {length} bytes runs past its message");
                    var inner = (level, field) switch
                    {
                        (Level.Model, ModelGraph) => Level.Graph,
                        (Level.Graph, GraphInitializer) => Level.Tensor,
                        _ => Level.Other,
                    };
                    if (level == Level.Tensor && TensorDataFields.Contains(field) && length > keep)
                    {
                        input.Seek(length, SeekOrigin.Current); // the weights: not needed for structure
                        break;
                    }
                    WriteVarint(output, tag);
                    if (inner == Level.Other)
                    {
                        WriteVarint(output, (ulong)length);
                        CopyBytes(input, output, length);
                    }
                    else
                    {
                        var sub = new MemoryStream();
                        Copy(input, input.Position + length, inner, sub, keep);
                        WriteVarint(output, (ulong)sub.Length);
                        sub.Position = 0;
                        sub.CopyTo(output);
                    }
                    break;
                default:
                    throw new InvalidDataException($"wire type {wire} is not valid protobuf");
            }
        }
    }

    private static ulong ReadVarint(Stream input)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            int b = input.ReadByte();
            if (b < 0) throw new EndOfStreamException("the file ends inside a field");
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("a varint is longer than 10 bytes");
    }

    private static void WriteVarint(Stream output, ulong value)
    {
        while (value >= 0x80)
        {
            output.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        output.WriteByte((byte)value);
    }

    private static void CopyBytes(Stream input, Stream output, long count)
    {
        var buffer = new byte[(int)Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            int n = input.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (n <= 0) throw new EndOfStreamException("the file ends inside a field");
            output.Write(buffer, 0, n);
            count -= n;
        }
    }
}
