using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace AsyncDiffusion.Models;

/// <summary>Element types a <c>.safetensors</c> header may declare.</summary>
public enum SafeTensorType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, F8E4M3, F8E5M2 }

/// <summary>One tensor of a <c>.safetensors</c> file: its name, type, shape and where its bytes are in the data block.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorType Type, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => End - Begin;
    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>
/// A <c>.safetensors</c> file (8-byte little-endian header length, JSON header of name → dtype,
/// shape, data_offsets, then the raw little-endian tensor bytes). <see cref="Open"/> maps the file
/// into memory, so multi-GB checkpoints cost only what is read: tensors are converted to float32
/// one at a time. The header is validated before anything is read (bounded size, known dtypes,
/// shape × dtype = byte length, offsets inside the file, no overlaps); a corrupt or truncated file
/// is an error naming the file and the tensor, never a crash or a huge allocation.
/// </summary>
public sealed class SafeTensors : IDisposable
{
    /// <summary>The largest JSON header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly Dictionary<string, SafeTensorInfo> _tensors;
    private readonly ITensorBytes _bytes;
    private readonly long _dataStart;

    private SafeTensors(string source, ITensorBytes bytes, long dataStart, Dictionary<string, SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Source = source;
        _bytes = bytes;
        _dataStart = dataStart;
        _tensors = tensors;
        Metadata = metadata;
    }

    public string Source { get; }
    public IReadOnlyCollection<string> Names => _tensors.Keys;
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors => _tensors;

    /// <summary>The header's <c>__metadata__</c> (string values only).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps the file into memory and validates its header. Dispose to unmap.</summary>
    public static SafeTensors Open(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new ModelFolderException($"'{path}' not found; expected a .safetensors file.");
        if (file.Length < 8) throw Invalid(path, $"it is {file.Length} bytes long, shorter than the 8-byte header length");
        var mapped = new MappedBytes(path, file.Length);
        try
        {
            return Create(path, mapped);
        }
        catch
        {
            mapped.Dispose();
            throw;
        }
    }

    /// <summary>Reads a small file (TAESD's weights, a LoRA) into memory: nothing to dispose.</summary>
    public static SafeTensors Load(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists) throw new ModelFolderException($"'{path}' not found; expected a .safetensors file.");
        if (file.Length > int.MaxValue) throw new ModelFolderException($"'{path}' is {file.Length:N0} bytes; open files this large with SafeTensors.Open (memory-mapped).");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>A file already in memory (an embedded resource, a test).</summary>
    public static SafeTensors Parse(byte[] bytes, string source)
    {
        if (bytes.Length < 8) throw Invalid(source, $"it is {bytes.Length} bytes long, shorter than the 8-byte header length");
        return Create(source, new ArrayBytes(bytes));
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new ModelFolderException($"'{Source}' has no tensor '{name}'.");

    /// <summary>A tensor's shape and values as float32 (from F32, F16, BF16, F64 or integer tensors).</summary>
    public (long[] Shape, float[] Values) this[string name]
    {
        get
        {
            var info = Info(name);
            return (info.Shape, ReadFloats(info));
        }
    }

    /// <summary>Reads a tensor (or <paramref name="count"/> elements from <paramref name="firstElement"/>) converted to float32.</summary>
    public float[] ReadFloats(SafeTensorInfo info, long firstElement = 0, long count = -1)
    {
        if (count < 0) count = info.ElementCount - firstElement;
        if (firstElement < 0 || firstElement + count > info.ElementCount)
            throw new ArgumentOutOfRangeException(nameof(count), $"elements {firstElement}..{firstElement + count} of '{info.Name}' {info.ShapeText}");
        if (count > Array.MaxLength)
            throw new ModelFolderException($"'{Source}': tensor '{info.Name}' {info.ShapeText} has {count:N0} elements, more than one array can hold.");
        int size = ElementSize(info.Type);
        if (!IsFloatReadable(info.Type))
            throw new ModelFolderException($"'{Source}': tensor '{info.Name}' has dtype {DTypeName(info.Type)}, which cannot be read as floating-point weights; expected F32, F16 or BF16.");
        var values = new float[count];
        long offset = _dataStart + info.Begin + firstElement * size;
        // Convert in bounded chunks: a multi-GB tensor never needs a second full-size buffer.
        const int chunkBytes = 1 << 20;
        byte[] chunk = ArrayPool<byte>.Shared.Rent(chunkBytes);
        try
        {
            long done = 0;
            while (done < count)
            {
                int n = (int)Math.Min(count - done, chunkBytes / size);
                _bytes.Read(offset + done * size, chunk, n * size);
                Convert(info.Type, chunk.AsSpan(0, n * size), values.AsSpan((int)done, n));
                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
        return values;
    }

    public void Dispose() => _bytes.Dispose();

    private static void Convert(SafeTensorType type, ReadOnlySpan<byte> bytes, Span<float> into)
    {
        switch (type)
        {
            case SafeTensorType.F32:
                for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
                break;
            case SafeTensorType.F16:
                for (int i = 0; i < into.Length; i++) into[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]);
                break;
            case SafeTensorType.BF16:
                for (int i = 0; i < into.Length; i++) into[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16);
                break;
            case SafeTensorType.F64:
                for (int i = 0; i < into.Length; i++) into[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]);
                break;
            case SafeTensorType.I64:
                for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes[(i * 8)..]);
                break;
            case SafeTensorType.I32:
                for (int i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(i * 4)..]);
                break;
            default:
                throw new InvalidOperationException($"No float conversion for {type}.");
        }
    }

    private static bool IsFloatReadable(SafeTensorType t) =>
        t is SafeTensorType.F32 or SafeTensorType.F16 or SafeTensorType.BF16 or SafeTensorType.F64 or SafeTensorType.I64 or SafeTensorType.I32;

    private static SafeTensors Create(string source, ITensorBytes bytes)
    {
        var lengthBytes = new byte[8];
        bytes.Read(0, lengthBytes, 8);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes)
            throw Invalid(source, $"it declares a {headerLength:N0}-byte JSON header, more than the {MaxHeaderBytes:N0} bytes the format allows");
        if (headerLength > (ulong)(bytes.Length - 8))
            throw Invalid(source, $"it declares a {headerLength:N0}-byte JSON header but only {bytes.Length - 8:N0} bytes follow the length (truncated?)");
        var header = new byte[headerLength];
        bytes.Read(8, header, header.Length);
        long dataStart = 8 + (long)headerLength;
        var (tensors, metadata) = ParseHeader(source, header, bytes.Length - dataStart);
        return new SafeTensors(source, bytes, dataStart, tensors, metadata);
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(string source, byte[] header, long dataLength)
    {
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Invalid(source, $"its header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Invalid(source, $"its header is a JSON {doc.RootElement.ValueKind}; expected an object of tensor name → {{dtype, shape, data_offsets}}");
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in entry.Value.EnumerateObject())
                            if (m.Value.ValueKind == JsonValueKind.String) metadata[m.Name] = m.Value.GetString()!;
                    continue;
                }
                var info = ParseEntry(source, entry, dataLength);
                if (!tensors.TryAdd(info.Name, info)) throw Invalid(source, $"tensor '{info.Name}' appears twice in the header");
            }
        }
        // Sorted by start, each tensor must end before the next begins.
        SafeTensorInfo? previous = null;
        foreach (var t in tensors.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.Begin))
        {
            if (previous is not null && t.Begin < previous.End)
                throw Invalid(source, $"tensors '{previous.Name}' (bytes {previous.Begin}..{previous.End}) and '{t.Name}' (bytes {t.Begin}..{t.End}) overlap");
            previous = t;
        }
        return (tensors, metadata);
    }

    private static SafeTensorInfo ParseEntry(string source, JsonProperty entry, long dataLength)
    {
        string name = entry.Name;
        var v = entry.Value;
        if (v.ValueKind != JsonValueKind.Object)
            throw Invalid(source, $"tensor '{name}' is described by a JSON {v.ValueKind}; expected {{dtype, shape, data_offsets}}");
        if (!v.TryGetProperty("dtype", out var d) || d.ValueKind != JsonValueKind.String)
            throw Invalid(source, $"tensor '{name}' has no dtype string");
        var type = ParseType(d.GetString()!) ?? throw Invalid(source, $"tensor '{name}' has dtype '{d.GetString()}'; expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2");
        if (!v.TryGetProperty("shape", out var s) || s.ValueKind != JsonValueKind.Array)
            throw Invalid(source, $"tensor '{name}' has no shape array");
        var shape = new long[s.GetArrayLength()];
        int k = 0;
        long count = 1;
        foreach (var dim in s.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long n) || n < 0)
                throw Invalid(source, $"tensor '{name}' has shape {s.GetRawText()}; expected non-negative integers");
            shape[k++] = n;
            try { count = checked(count * n); }
            catch (OverflowException) { throw Invalid(source, $"tensor '{name}' has shape {s.GetRawText()}, whose element count overflows"); }
        }
        if (!v.TryGetProperty("data_offsets", out var o) || o.ValueKind != JsonValueKind.Array || o.GetArrayLength() != 2
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Invalid(source, $"tensor '{name}' has data_offsets {(v.TryGetProperty("data_offsets", out var raw) ? raw.GetRawText() : "(missing)")}; expected [begin, end] with 0 ≤ begin ≤ end");
        long bytes;
        try { bytes = checked(count * ElementSize(type)); }
        catch (OverflowException) { throw Invalid(source, $"tensor '{name}' has shape {s.GetRawText()}, whose byte size overflows"); }
        if (end - begin != bytes)
            throw Invalid(source, $"tensor '{name}' ({d.GetString()} {s.GetRawText()}) needs {bytes:N0} bytes but its data_offsets [{begin}, {end}] span {end - begin:N0}");
        if (end > dataLength)
            throw Invalid(source, $"tensor '{name}' has data_offsets [{begin}, {end}] past the end of the data ({dataLength:N0} bytes): the file is truncated or corrupt");
        return new SafeTensorInfo(name, type, shape, begin, end);
    }

    private static SafeTensorType? ParseType(string dtype) => dtype switch
    {
        "F64" => SafeTensorType.F64,
        "F32" => SafeTensorType.F32,
        "F16" => SafeTensorType.F16,
        "BF16" => SafeTensorType.BF16,
        "I64" => SafeTensorType.I64,
        "I32" => SafeTensorType.I32,
        "I16" => SafeTensorType.I16,
        "I8" => SafeTensorType.I8,
        "U8" => SafeTensorType.U8,
        "BOOL" => SafeTensorType.Bool,
        "F8_E4M3" => SafeTensorType.F8E4M3,
        "F8_E5M2" => SafeTensorType.F8E5M2,
        _ => null,
    };

    public static string DTypeName(SafeTensorType t) => t switch
    {
        SafeTensorType.Bool => "BOOL",
        SafeTensorType.F8E4M3 => "F8_E4M3",
        SafeTensorType.F8E5M2 => "F8_E5M2",
        _ => t.ToString().ToUpperInvariant(),
    };

    public static int ElementSize(SafeTensorType t) => t switch
    {
        SafeTensorType.F64 or SafeTensorType.I64 => 8,
        SafeTensorType.F32 or SafeTensorType.I32 => 4,
        SafeTensorType.F16 or SafeTensorType.BF16 or SafeTensorType.I16 => 2,
        _ => 1,
    };

    private static ModelFolderException Invalid(string source, string why) => new($"'{source}' is not a valid .safetensors file: {why}.");

    /// <summary>Where the file's bytes are: mapped from disk or in an array.</summary>
    private interface ITensorBytes : IDisposable
    {
        long Length { get; }
        void Read(long offset, byte[] into, int count);
    }

    private sealed class ArrayBytes(byte[] bytes) : ITensorBytes
    {
        public long Length => bytes.Length;
        public void Read(long offset, byte[] into, int count) => Array.Copy(bytes, offset, into, 0, count);
        public void Dispose() { }
    }

    // Views are mapped per read and unmapped after it, so pages already converted leave the
    // process instead of adding up to the whole file in its resident set.
    private sealed class MappedBytes(string path, long length) : ITensorBytes
    {
        private readonly MemoryMappedFile _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);

        public long Length { get; } = length;

        // ReadArray copies out of the mapping without unsafe code; callers read in bounded chunks.
        public void Read(long offset, byte[] into, int count)
        {
            if (count == 0) return;
            using var view = _file.CreateViewAccessor(offset, count, MemoryMappedFileAccess.Read);
            int n = view.ReadArray(0, into, 0, count);
            if (n != count) throw new ModelFolderException($"Read {n} of {count} bytes at offset {offset}: the file changed or is truncated.");
        }

        public void Dispose() => _file.Dispose();
    }
}
