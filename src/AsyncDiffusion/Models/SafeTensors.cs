using System.Buffers.Binary;
using System.Text.Json;

namespace AsyncDiffusion.Models;

/// <summary>
/// Reads a <c>.safetensors</c> file (8-byte little-endian header length, JSON header of
/// name → dtype, shape, data_offsets, then raw little-endian tensor bytes) into float32 arrays.
/// BF16, F16 and F32 are supported.
/// </summary>
public sealed class SafeTensors
{
    private readonly Dictionary<string, (long[] Shape, float[] Values)> _tensors;

    private SafeTensors(string source, Dictionary<string, (long[], float[])> tensors)
    {
        Source = source;
        _tensors = tensors;
    }

    public string Source { get; }
    public IReadOnlyCollection<string> Names => _tensors.Keys;

    public static SafeTensors Load(string path)
    {
        if (!File.Exists(path)) throw new ModelFolderException($"'{path}' not found; expected a .safetensors file.");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static SafeTensors Parse(byte[] bytes, string source)
    {
        if (bytes.Length < 8) throw Invalid(source, "it is shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > (ulong)(bytes.Length - 8)) throw Invalid(source, $"its header claims {headerLength} bytes but the file has {bytes.Length}");
        int dataStart = 8 + (int)headerLength;
        var tensors = new Dictionary<string, (long[], float[])>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") continue;
                string dtype = entry.Value.GetProperty("dtype").GetString()!;
                long[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                int size = dtype switch
                {
                    "F32" => 4,
                    "F16" or "BF16" => 2,
                    _ => throw Invalid(source, $"tensor '{entry.Name}' has dtype {dtype}; expected F32, F16 or BF16"),
                };
                if (offsets.Length != 2 || offsets[1] - offsets[0] != count * size || dataStart + offsets[1] > bytes.Length)
                    throw Invalid(source, $"tensor '{entry.Name}' has data_offsets [{string.Join(", ", offsets)}], which do not fit its shape or the file");
                var span = bytes.AsSpan(dataStart + (int)offsets[0], (int)(count * size));
                var values = new float[count];
                for (int i = 0; i < count; i++)
                {
                    values[i] = dtype switch
                    {
                        "F32" => BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]),
                        "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(span[(i * 2)..]),
                        _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(span[(i * 2)..]) << 16),
                    };
                }
                tensors[entry.Name] = (shape, values);
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Invalid(source, $"its header is not valid safetensors JSON ({e.Message})");
        }
        return new SafeTensors(source, tensors);
    }

    public (long[] Shape, float[] Values) this[string name] =>
        _tensors.TryGetValue(name, out var t) ? t : throw new ModelFolderException($"'{Source}' has no tensor '{name}'.");

    public bool Contains(string name) => _tensors.ContainsKey(name);

    private static AsyncDiffusionException Invalid(string source, string why) => new($"'{source}' is not a valid .safetensors file: {why}.");
}
