using System.Buffers.Binary;
using System.Text;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>The memory-mapped reader: every dtype real files hold, and a clear error for each kind of corrupt header.</summary>
public class SafeTensorsTests
{
    [Fact]
    public void FloatAndIntegerTensorsReadAsFloat32()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "mixed.safetensors");
        float[] values = [0.5f, -1.25f, 3.0e-3f, 1234.5f];
        SafeTensorsWriter.Write(path,
        [
            new("f32", "F32", [2, 2], values), new("f16", "F16", [4], values), new("bf16", "BF16", [4], values),
            new("ids", "I64", [1, 3], Integers: [0, 1, 76]), new("empty", "F32", [0, 5]),
        ]);
        using var file = SafeTensors.Open(path);
        Assert.Equal(values, file["f32"].Values);
        Assert.Equal(new long[] { 2, 2 }, file["f32"].Shape);
        Assert.Equal(values.Select(v => (float)(Half)v), file["f16"].Values);
        Assert.Equal(values.Select(v => SafeTensorsWriter.Rounded("BF16", v)), file["bf16"].Values);
        Assert.Equal(new float[] { 0, 1, 76 }, file["ids"].Values);
        Assert.Empty(file["empty"].Values);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(new float[] { -1.25f, 3.0e-3f }, file.ReadFloats(file.Info("f32"), 1, 2));
    }

    public static TheoryData<string, byte[], string> CorruptFiles() => new()
    {
        { "bad header JSON", Header("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], "), "its header is not valid JSON" },
        { "offsets past the end", Header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", dataBytes: 8),
            "tensor 'w' has data_offsets [0, 16] past the end of the data (8 bytes)" },
        { "shape and size disagree", Header("{\"w\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", dataBytes: 16),
            "tensor 'w' (F16 [3,3]) needs 18 bytes but its data_offsets [0, 16] span 16" },
        { "huge declared header", HugeHeader(), "declares a 1,099,511,627,776-byte JSON header" },
        { "header longer than the file", Truncated(), "declares a 4,096-byte JSON header but only" },
        { "overlapping tensors", Header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", dataBytes: 12),
            "tensors 'a' (bytes 0..8) and 'b' (bytes 4..12) overlap" },
        { "unknown dtype", Header("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", dataBytes: 2), "tensor 'w' has dtype 'Q4'" },
        { "negative dimension", Header("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", dataBytes: 4), "tensor 'w' has shape [-1]" },
        { "shorter than the length field", [1, 2, 3], "shorter than the 8-byte header length" },
    };

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptFilesAreAClearErrorNamingTheProblem(string what, byte[] bytes, string expected)
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "corrupt.safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelFolderException>(() => SafeTensors.Open(path));
        Assert.Contains("corrupt.safetensors' is not a valid .safetensors file", e.Message);
        Assert.True(e.Message.Contains(expected, StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    [Fact]
    public void ReadingANonFloatTensorAsWeightsNamesIt()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "bytes.safetensors");
        File.WriteAllBytes(path, Header("{\"mask\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", dataBytes: 4));
        using var file = SafeTensors.Open(path);
        var e = Assert.Throws<ModelFolderException>(() => file["mask"]);
        Assert.Contains("tensor 'mask' has dtype BOOL", e.Message);
    }

    internal static byte[] Header(string json, int dataBytes = 0)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        return bytes;
    }

    private static byte[] HugeHeader()
    {
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1UL << 40);
        return bytes;
    }

    private static byte[] Truncated()
    {
        var bytes = new byte[100];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 4096);
        return bytes;
    }
}
