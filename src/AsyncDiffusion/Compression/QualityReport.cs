using System.Text.Json;
using System.Text.Json.Serialization;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Onnx.Graphs.Quantization;

namespace AsyncDiffusion.Compression;

/// <summary>How much signal one quantized layer's weights kept.</summary>
/// <param name="Component">unet, text_encoder, …</param>
/// <param name="Layer">The weight's name, or the node's where the exporter named weights by number (onnx::MatMul_123).</param>
/// <param name="QuantizedAs">QLinearConv or DynamicQuantizeMatMul.</param>
/// <param name="WeightSqnrDb">Signal-to-quantization-noise ratio of the weights.</param>
public sealed record LayerSqnr(string Component, string Layer, string QuantizedAs, double WeightSqnrDb);

/// <summary>
/// The UNet's output, int8 against fp32, on identical inputs at one timestep: the raw output
/// of both batch rows, and the guided prediction the scheduler steps with.
/// </summary>
public sealed record TimestepSnr(int Timestep, double OutputSnrDb, double GuidedSnrDb);

/// <summary>One generation run on both models with the same prompt, seed and steps.</summary>
/// <param name="Prompt">A prompt no calibration run used.</param>
/// <param name="Seed">The seed of both runs.</param>
/// <param name="Steps">Denoising steps of both runs.</param>
/// <param name="Size">Image size.</param>
/// <param name="LatentSnrDb">Final latents, int8 against fp32.</param>
/// <param name="LatentRelativeError">RMS of the difference over the RMS of the fp32 latents.</param>
/// <param name="ImagePsnrDb">The decoded 8-bit images, int8 model against fp32 model.</param>
/// <param name="VaeDecoderPsnrDb">The fp32 run's latents decoded by the int8 VAE decoder against the fp32 one (null when the decoder stayed float).</param>
public sealed record EndToEndComparison(string Prompt, long Seed, int Steps, string Size, double LatentSnrDb, double LatentRelativeError,
    double ImagePsnrDb, double? VaeDecoderPsnrDb);

/// <summary>A decode of one test image, int8 against fp32.</summary>
public sealed record ImagePsnr(string Image, double PsnrDb);

/// <summary>
/// The quality report of a quantization: weight SQNR per layer, the UNet's output SNR at
/// several timesteps, an end-to-end comparison, and TAESD's decoder (real trained weights)
/// quantized by the same code.
/// </summary>
public sealed record QualityReport(IReadOnlyList<LayerSqnr> WeightSqnr, [property: JsonPropertyName("unet_output")] IReadOnlyList<TimestepSnr> UNetOutput,
    EndToEndComparison? EndToEnd, IReadOnlyList<ImagePsnr> Taesd)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // people read these files: keep ' and × as they are
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public void Save(string path) => File.WriteAllText(path, ToJson() + "\n");

    public static IReadOnlyList<LayerSqnr> WeightSqnrOf(IReadOnlyDictionary<string, QuantizationRecord> records) =>
        records.SelectMany(r => r.Value.Layers.Select(l =>
            new LayerSqnr(r.Key, l.Weight.StartsWith("onnx::", StringComparison.Ordinal) ? l.Node : l.Weight, l.QuantizedAs, Math.Round(l.WeightSqnrDb, 2)))).ToArray();
}

/// <summary>Signal-to-noise ratios between a reference and a test signal.</summary>
public static class SignalComparison
{
    /// <summary>10·log10(Σ ref² / Σ (ref − test)²), capped at 200 dB for identical signals.</summary>
    public static double SnrDb(ReadOnlySpan<float> reference, ReadOnlySpan<float> test)
    {
        if (reference.Length != test.Length) throw new ArgumentException("Signals of different lengths.", nameof(test));
        double signal = 0, noise = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            signal += (double)reference[i] * reference[i];
            double d = reference[i] - test[i];
            noise += d * d;
        }
        return WeightQuantization.Decibels(signal, noise);
    }

    /// <summary>PSNR of values on [0, <paramref name="peak"/>], capped at 200 dB for identical signals.</summary>
    public static double PsnrDb(ReadOnlySpan<float> reference, ReadOnlySpan<float> test, double peak = 1)
    {
        double noise = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double d = reference[i] - test[i];
            noise += d * d;
        }
        return WeightQuantization.Decibels(peak * peak * reference.Length, noise);
    }

    public static double PsnrDb(RgbImage reference, RgbImage test)
    {
        if (reference.Width != test.Width || reference.Height != test.Height) throw new ArgumentException("Images of different sizes.", nameof(test));
        double noise = 0;
        for (int i = 0; i < reference.Pixels.Length; i++)
        {
            double d = reference.Pixels[i] - test.Pixels[i];
            noise += d * d;
        }
        return WeightQuantization.Decibels(255.0 * 255.0 * reference.Pixels.Length, noise);
    }
}
