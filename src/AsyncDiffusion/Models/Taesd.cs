using AsyncDiffusion.Imaging;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;

namespace AsyncDiffusion.Models;

/// <summary>
/// TAESD (Tiny AutoEncoder for Stable Diffusion), built as ONNX graphs from its real trained
/// weights: a fast decoder for final images and live previews, and its encoder. It works on the
/// UNet's latents as they are (no scaling factor) and on images in [0, 1].
/// </summary>
public static class Taesd
{
    /// <summary>The SD 1.x/2.x TAESD weights shipped in the library (MIT, madebyollin/taesd).</summary>
    public static SafeTensors BuiltInDecoderWeights => EmbeddedData.SafeTensors("taesd_decoder.safetensors");
    public static SafeTensors BuiltInEncoderWeights => EmbeddedData.SafeTensors("taesd_encoder.safetensors");

    /// <param name="settings">ONNX Runtime session settings.</param>
    /// <param name="weights">TAESD decoder weights; null: the built-in ones.</param>
    /// <param name="circular">Pad every convolution circularly (seamless tiling).</param>
    public static TaesdDecoder LoadDecoder(SessionSettings settings, SafeTensors? weights = null, bool circular = false)
    {
        var model = BuildDecoder(weights ?? BuiltInDecoderWeights);
        if (circular)
        {
            var graph = OnnxGraph.FromBytes(model, "TAESD decoder");
            CircularPadding.ApplyOrFail(graph);
            model = graph.ToBytes();
        }
        return new(OnnxModel.FromBytes(model, circular ? "TAESD decoder (circular)" : "TAESD decoder", settings));
    }

    public static TaesdEncoder LoadEncoder(SessionSettings settings, SafeTensors? weights = null) =>
        new(OnnxModel.FromBytes(BuildEncoder(weights ?? BuiltInEncoderWeights), "TAESD encoder", settings));

    /// <summary>Decoder: tanh clamp, conv, three ×(3 blocks, 2× upsample, conv), block, conv to RGB.</summary>
    /// <param name="w">TAESD's decoder weights.</param>
    /// <param name="vaeContract">Output in [-1, 1], as a model folder's vae_decoder (AutoencoderTiny with scaling factor 1).</param>
    public static byte[] BuildDecoder(SafeTensors w, bool vaeContract = false)
    {
        using var g = new OnnxGraphBuilder("taesd_decoder", new SeededWeights(0), half: false);
        var x = g.Input("latent_sample", FloatType, "batch", 4, "latent_height", "latent_width");
        // Clamp: tanh(x / 3) · 3
        var h = g.Op("Mul", [g.Op("Tanh", [g.Op("Div", [x, g.Float(3f)])]), g.Float(3f)]);
        h = g.Op("Relu", [Conv(g, w, h, "1")]);
        int index = 3;
        for (int stage = 0; stage < 3; stage++)
        {
            for (int b = 0; b < 3; b++) h = Block(g, w, h, (index++).ToString());
            index++; // Upsample
            h = Conv(g, w, new GraphLayers(g).Upsample2x(h), (index++).ToString());
        }
        h = Block(g, w, h, (index++).ToString());
        h = Conv(g, w, h, (index).ToString());
        if (vaeContract) h = g.Op("Sub", [g.Op("Mul", [h, g.Float(2f)]), g.Float(1f)]);
        g.Output("sample", h, FloatType, "batch", 3, "height", "width");
        return g.ToBytes("asyncdiffusion-taesd");
    }

    /// <summary>Encoder: conv, block, three ×(stride-2 conv, 3 blocks), conv to 4 latent channels.</summary>
    /// <param name="w">TAESD's encoder weights.</param>
    /// <param name="vaeContract">
    /// As a model folder's vae_encoder: image in [-1, 1], output <c>latent_parameters</c> (the latents as the mean and a
    /// log-variance of −30, so sampling adds nothing visible).
    /// </param>
    public static byte[] BuildEncoder(SafeTensors w, bool vaeContract = false)
    {
        using var g = new OnnxGraphBuilder("taesd_encoder", new SeededWeights(0), half: false);
        var h = g.Input("sample", FloatType, "batch", 3, "height", "width");
        if (vaeContract) h = g.Op("Add", [g.Op("Mul", [h, g.Float(0.5f)]), g.Float(0.5f)]);
        h = Conv(g, w, h, "0");
        h = Block(g, w, h, "1");
        int index = 2;
        for (int stage = 0; stage < 3; stage++)
        {
            h = Conv(g, w, h, (index++).ToString(), stride: 2);
            for (int b = 0; b < 3; b++) h = Block(g, w, h, (index++).ToString());
        }
        h = Conv(g, w, h, index.ToString());
        if (vaeContract)
        {
            var logVariance = g.Op("Add", [g.Op("Mul", [h, g.Float(0f)]), g.Float(-30f)]);
            g.Output("latent_parameters", g.Op("Concat", [h, logVariance], ("axis", 1)), FloatType, "batch", 8, "latent_height", "latent_width");
        }
        else g.Output("latent_sample", h, FloatType, "batch", 4, "latent_height", "latent_width");
        return g.ToBytes("asyncdiffusion-taesd");
    }

    private static readonly global::Onnx.TensorProto.Types.DataType FloatType = global::Onnx.TensorProto.Types.DataType.Float;

    // Block(x) = ReLU(conv(ReLU(conv(ReLU(conv(x))))) + x): every TAESD block is 64 → 64.
    private static string Block(OnnxGraphBuilder g, SafeTensors w, string x, string prefix)
    {
        var h = g.Op("Relu", [Conv(g, w, x, $"{prefix}.conv.0")]);
        h = g.Op("Relu", [Conv(g, w, h, $"{prefix}.conv.2")]);
        h = Conv(g, w, h, $"{prefix}.conv.4");
        return g.Op("Relu", [g.Op("Add", [h, x])]);
    }

    private static string Conv(OnnxGraphBuilder g, SafeTensors w, string x, string prefix, int stride = 1)
    {
        var (shape, values) = w[$"{prefix}.weight"];
        if (shape.Length != 4 || shape[2] != 3 || shape[3] != 3)
            throw new AsyncDiffusionException($"'{w.Source}': {prefix}.weight has shape [{string.Join(", ", shape)}]; expected a 3×3 convolution (TAESD layout).");
        var inputs = new List<string> { x, g.Parameter($"{prefix}.weight", shape, values) };
        if (w.Contains($"{prefix}.bias"))
        {
            var (bShape, bValues) = w[$"{prefix}.bias"];
            inputs.Add(g.Parameter($"{prefix}.bias", bShape, bValues));
        }
        return g.Op("Conv", inputs.ToArray(), ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { stride, stride }), ("pads", new long[] { 1, 1, 1, 1 }));
    }
}

/// <summary>TAESD's decoder: latents [batch, 4, h, w] (unscaled) → image [batch, 3, 8h, 8w] in [0, 1].</summary>
public sealed class TaesdDecoder(OnnxModel model) : ModelComponent(model), ILatentDecoder
{
    public (float[] Image, long[] Shape) Decode(ReadOnlySpan<float> latents, long[] shape, CancellationToken cancellation = default)
    {
        var outputs = RunFloat(Model, ["latent_sample"], [Tensors.Float(latents, shape, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)], ["sample"], cancellation, out var shapes);
        return (outputs[0], shapes[0]);
    }

    /// <summary>TAESD works on the UNet's latents as they are and outputs [0, 1].</summary>
    public RgbImage DecodeImage(ReadOnlySpan<float> latents, int channels, int height, int width, CancellationToken cancellation = default)
    {
        var (image, shape) = Decode(latents, [1, channels, height, width], cancellation);
        return LatentImageConversion.ToImage(image, 0, (int)shape[3], (int)shape[2], zeroToOne: true);
    }
}

/// <summary>TAESD's encoder: image [batch, 3, H, W] in [0, 1] → latents [batch, 4, H/8, W/8] (unscaled).</summary>
public sealed class TaesdEncoder(OnnxModel model) : ModelComponent(model)
{
    public (float[] Latents, long[] Shape) Encode(ReadOnlySpan<float> image, long[] shape, CancellationToken cancellation = default)
    {
        var outputs = RunFloat(Model, ["sample"], [Tensors.Float(image, shape, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)], ["latent_sample"], cancellation, out var shapes);
        return (outputs[0], shapes[0]);
    }
}
