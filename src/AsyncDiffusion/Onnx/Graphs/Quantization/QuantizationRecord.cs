using System.Text.Json;
using System.Text.Json.Serialization;

namespace AsyncDiffusion.Onnx.Graphs.Quantization;

/// <summary>A uint8 activation quantization: the tensor, how its scale is set, and the calibrated range it came from.</summary>
/// <param name="Tensor">The float tensor quantized.</param>
/// <param name="Mode">"static": <paramref name="Scale"/> and <paramref name="ZeroPoint"/> are fixed. "per-call": an input's
/// scale and zero point are computed from each call's own range (DynamicQuantizeLinear); an output's scale is the input's
/// per-call scale times <paramref name="Scale"/>, with the fixed <paramref name="ZeroPoint"/>.</param>
/// <param name="Scale">The scale, or for a per-call output the factor on the input's scale.</param>
/// <param name="ZeroPoint">The zero point (unused for per-call inputs).</param>
/// <param name="ObservedMin">The least value calibration saw.</param>
/// <param name="ObservedMax">The largest value calibration saw.</param>
/// <param name="ClipLow">Lower end of the chosen range.</param>
/// <param name="ClipHigh">Upper end of the chosen range.</param>
/// <param name="CallRangeSpread">How many times the widest calibration call's range exceeds the narrowest's.</param>
public sealed record ActivationQuantization(string Tensor, string Mode, float Scale, byte ZeroPoint, float ObservedMin, float ObservedMax, float ClipLow,
    float ClipHigh, double CallRangeSpread);

/// <summary>The ways an activation's uint8 scale is set.</summary>
public static class ActivationModes
{
    public const string Static = "static";
    public const string PerCall = "per-call";
}

/// <summary>One layer rewritten to int8.</summary>
/// <param name="Node">The original node's name (its output where unnamed).</param>
/// <param name="OpType">Conv, MatMul or Gemm.</param>
/// <param name="Weight">The original weight initializer.</param>
/// <param name="QuantizedAs">QLinearConv (static: u8 activations from calibration) or DynamicQuantizeMatMul (u8 activations quantized per call).</param>
/// <param name="WeightScales">One scale per output channel (symmetric int8, zero point 0).</param>
/// <param name="WeightSqnrDb">Signal-to-quantization-noise ratio of the weights.</param>
/// <param name="Input">The input activation's quantization (static layers only).</param>
/// <param name="Output">The output activation's quantization (static layers only).</param>
public sealed record QuantizedLayer(string Node, string OpType, string Weight, string QuantizedAs, float[] WeightScales, double WeightSqnrDb,
    ActivationQuantization? Input, ActivationQuantization? Output);

/// <summary>A weight layer left in float, and why.</summary>
public sealed record KeptLayer(string Node, string OpType, string Weight, string Reason);

/// <summary>Where the activation ranges came from.</summary>
public sealed record CalibrationSummary(string Source, int Samples, string Clipping);

/// <summary>
/// What quantization did to one model file, written beside it as quantization.json: every
/// layer rewritten (with its scales) and every weight layer kept in float with the reason.
/// </summary>
public sealed record QuantizationRecord(string Format, string Scheme, string Component, CalibrationSummary? Calibration,
    IReadOnlyList<QuantizedLayer> Layers, IReadOnlyList<KeptLayer> Kept)
{
    public const string FileName = "quantization.json";
    public const string CurrentFormat = "asyncdiffusion-int8/1";
    public const string Int8Scheme = "int8: weights s8 symmetric per output channel; convolutions QLinearConv with u8 activations from calibration; linear layers DynamicQuantizeMatMul";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // people read these files: keep ' and × as they are
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public int Convolutions => Layers.Count(l => l.QuantizedAs == "QLinearConv");
    public int PerCallConvolutions => Layers.Count(l => l.Input?.Mode == ActivationModes.PerCall);
    public int Linears => Layers.Count(l => l.QuantizedAs == "DynamicQuantizeMatMul");

    /// <summary>One line for people: what is int8 and what stayed float.</summary>
    public string Summary()
    {
        var kept = Kept.GroupBy(k => k.OpType).Select(g => $"{g.Count()} {g.Key}");
        string perCall = PerCallConvolutions > 0 ? $" ({PerCallConvolutions} with per-call input ranges)" : "";
        return $"int8: {Convolutions} QLinearConv{perCall}, {Linears} DynamicQuantizeMatMul; float: {(Kept.Count == 0 ? "none" : string.Join(", ", kept))}";
    }

    public void Save(string folder) => File.WriteAllText(Path.Combine(folder, FileName), JsonSerializer.Serialize(this, Json) + "\n");

    /// <summary>The record beside a model file, if the folder has one.</summary>
    public static QuantizationRecord? Load(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<QuantizationRecord>(File.ReadAllText(path), Json)
                ?? throw new ModelFolderException($"'{path}' is empty; expected a quantization record.");
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{path}' is not a valid quantization record ({e.Message}).");
        }
    }
}
