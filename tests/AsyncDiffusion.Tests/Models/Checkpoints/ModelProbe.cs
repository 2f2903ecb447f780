using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>Reads what a model folder holds (initializers) and computes (component outputs on fixed inputs), to compare two folders.</summary>
internal static class ModelProbe
{
    public static readonly string[] Components = ["text_encoder", "unet", "vae_decoder", "vae_encoder"];

    /// <summary>Every float initializer of a component's model.onnx (embedded or external data), as float32.</summary>
    public static Dictionary<string, float[]> Initializers(string folder, string component)
    {
        string dir = Path.Combine(folder, component);
        ModelProto model;
        using (var stream = File.OpenRead(Path.Combine(dir, "model.onnx"))) model = ModelProto.Parser.ParseFrom(stream);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in model.Graph.Initializer)
        {
            if (t.DataType is not ((int)TensorProto.Types.DataType.Float or (int)TensorProto.Types.DataType.Float16)) continue;
            byte[] bytes;
            if (t.DataLocation == TensorProto.Types.DataLocation.External)
            {
                var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
                bytes = new byte[long.Parse(entries["length"])];
                using var data = File.OpenRead(Path.Combine(dir, entries["location"]));
                data.Seek(long.Parse(entries["offset"]), SeekOrigin.Begin);
                data.ReadExactly(bytes);
            }
            else bytes = t.RawData.ToByteArray();
            result[t.Name] = t.DataType == (int)TensorProto.Types.DataType.Float
                ? Enumerable.Range(0, bytes.Length / 4).Select(i => BitConverter.ToSingle(bytes, i * 4)).ToArray()
                : Enumerable.Range(0, bytes.Length / 2).Select(i => (float)BitConverter.ToHalf(bytes, i * 2)).ToArray();
        }
        return result;
    }

    /// <summary>Text encoder, UNet, VAE decoder and encoder outputs on fixed inputs.</summary>
    public static Dictionary<string, float[]> Outputs(string folder)
    {
        using var model = ModelFolder.Open(folder);
        var ids = new int[77];
        int[] prompt = [49406, 320, 1125, 539, 320, 2368, 49407];
        prompt.CopyTo(ids, 0);
        for (int i = prompt.Length; i < 77; i++) ids[i] = model.Tokenizer.PadId;
        var text = model.TextEncoder.Encode(ids, 1);
        int hidden = model.TextEncoder.HiddenSize;
        var context = text.Concat(text).ToArray();
        int c = model.LatentChannels;
        var sample = Pattern(2 * c * 8 * 8, 0.7);
        var unet = model.UNet.Predict(sample, [2, c, 8, 8], [999.0, 421.0], context, [2, 77, hidden]);
        var (decoded, _) = model.VaeDecoder.Decode(Pattern(c * 8 * 8, 1.3), [1, c, 8, 8]);
        var (encoded, _) = model.VaeEncoder!.Encode(Pattern(3 * 64 * 64, 0.9).Select(v => v / 2).ToArray(), [1, 3, 64, 64]);
        return new() { ["text_encoder"] = text, ["unet"] = unet, ["vae_decoder"] = decoded, ["vae_encoder"] = encoded };
    }

    private static float[] Pattern(int n, double scale) => Enumerable.Range(0, n).Select(i => (float)(scale * Math.Sin(i * 0.37 + 0.1))).ToArray();

    public static double MaxDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();
    }
}

/// <summary>Seeded synthetic weights as stored in a given dtype and read back (the reference for fp16/bf16 checkpoints).</summary>
internal sealed class RoundedWeights(IWeightSource inner, string dtype) : IWeightSource
{
    public float[] Values(ParameterSpec parameter) => inner.Values(parameter).Select(v => SafeTensorsWriter.Rounded(dtype, v)).ToArray();
}
