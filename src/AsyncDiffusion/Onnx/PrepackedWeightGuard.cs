using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// Checks the pre-packed weights ONNX Runtime saved beside an optimised graph
/// (<c>session.save_external_prepacked_constant_initializers</c>). A warm load maps them from the
/// data file in place, so a blob's address is as aligned as its file offset; ORT 1.31 aligns
/// only tensors over 1 MB when it saves, and a packed matrix at an offset that is not a multiple
/// of 64 bytes crashes the first run (its kernels read packed panels with aligned vector loads;
/// seen on the tiny text encoder, whose odd-sized position table shifts everything after it).
/// Such tensors lose their saved copy and are packed at load, as without the setting.
/// </summary>
internal static class PrepackedWeightGuard
{
    /// <summary>The widest vector the CPU kernels load aligned (AVX-512: 64 bytes).</summary>
    internal const long Alignment = 64;

    private const string KeyPrefix = "prepacked";

    /// <summary>
    /// Drops the saved pre-packed copies that could not be mapped safely from the graph file at
    /// <paramref name="modelPath"/> (rewriting it only when something was dropped).
    /// </summary>
    /// <returns>How many tensors keep their saved copy and how many lost it.</returns>
    public static (int Kept, int Dropped) Apply(string modelPath)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        var result = Apply(model);
        if (result.Dropped > 0)
        {
            string temporary = modelPath + ".aligned";
            File.WriteAllBytes(temporary, model.ToByteArray());
            File.Move(temporary, modelPath, overwrite: true);
        }
        return result;
    }

    /// <summary>The same on a parsed graph (changed in place).</summary>
    public static (int Kept, int Dropped) Apply(ModelProto model)
    {
        int kept = 0, dropped = 0;
        foreach (var tensor in model.Graph.Initializer)
        {
            var packed = tensor.ExternalData.Where(e => e.Key.StartsWith(KeyPrefix, StringComparison.Ordinal)).ToList();
            if (packed.Count == 0) continue;
            if (packed.All(e => IsAligned(e.Value)))
            {
                kept++;
                continue;
            }
            foreach (var entry in packed) tensor.ExternalData.Remove(entry);
            dropped++;
        }
        return (kept, dropped);
    }

    /// <summary>
    /// A saved entry reads "kernel key|offset;length;…[|offset;length;…]": one blob per packed
    /// buffer. Anything else is treated as not known to be safe.
    /// </summary>
    internal static bool IsAligned(string value)
    {
        string[] parts = value.Split('|');
        if (parts.Length < 2) return false;
        foreach (string blob in parts.Skip(1))
        {
            string offset = blob.Split(';')[0];
            if (!long.TryParse(offset, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long at) || at % Alignment != 0)
                return false;
        }
        return true;
    }
}
