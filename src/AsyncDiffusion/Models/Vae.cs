using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>The VAE decoder: latents [batch, C, h, w] (already divided by the scaling factor) → image [batch, 3, h·f, w·f] in about [-1, 1].</summary>
public sealed class VaeDecoder : ModelComponent
{
    private readonly string _input, _output;

    public TensorElementType InputType { get; }
    public int LatentChannels { get; }
    public int ScaleFactor { get; }
    public double ScalingFactor { get; }

    private VaeDecoder(OnnxModel model, string folder, double? scalingFactor) : base(model)
    {
        _input = InputNamed("latent_sample", 0, "latent_sample, float [batch, 4, h, w]");
        _output = OutputNamed("sample", 0, "sample, float [batch, 3, H, W]");
        InputType = ElementType(_input, true, TensorElementType.Float, TensorElementType.Float16);
        var config = ReadConfig(folder);
        LatentChannels = StaticDimension(_input, true, 1) ?? ConfigInt(config, "latent_channels") ?? 4;
        ScalingFactor = ConfigDouble(config, "scaling_factor") ?? scalingFactor ?? 0.18215;
        var blocks = ConfigInts(config, "block_out_channels");
        ScaleFactor = blocks is { Length: > 0 } ? 1 << (blocks.Length - 1) : ProbeScaleFactor();
    }

    /// <param name="scalingFactor">From vae/config.json when the decoder folder has no config of its own.</param>
    public static VaeDecoder Load(string folder, SessionSettings settings, double? scalingFactor = null)
    {
        var model = OnnxModel.Load(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new VaeDecoder(model, folder, scalingFactor));
    }

    // Exports leave H and W symbolic: decode a 4×4 latent and compare sizes.
    private int ProbeScaleFactor()
    {
        var (_, shape) = Decode(new float[LatentChannels * 16], [1, LatentChannels, 4, 4]);
        return (int)(shape[2] / 4);
    }

    public (float[] Image, long[] Shape) Decode(ReadOnlySpan<float> latents, long[] shape, CancellationToken cancellation = default)
    {
        var outputs = RunFloat(Model, [_input], [Tensors.Float(latents, shape, InputType)], [_output], cancellation, out var shapes);
        return (outputs[0], shapes[0]);
    }
}

/// <summary>What the VAE encoder export returns.</summary>
public enum VaeEncoderOutput
{
    /// <summary>A latent sampled inside the graph (old exports; not reproducible).</summary>
    LatentSample,
    /// <summary>Mean ‖ log-variance (optimum ≥ 1.23): the host samples or takes the mean.</summary>
    LatentParameters,
}

/// <summary>The VAE encoder: image [batch, 3, H, W] in [-1, 1] → latent distribution or sample.</summary>
public sealed class VaeEncoder : ModelComponent
{
    private readonly string _input, _output;

    public TensorElementType InputType { get; }
    public VaeEncoderOutput Output { get; }

    private VaeEncoder(OnnxModel model) : base(model)
    {
        _input = InputNamed("sample", 0, "sample, float [batch, 3, H, W]");
        _output = model.OutputNames.Contains("latent_parameters") ? "latent_parameters" : OutputNamed("latent_sample", 0, "latent_parameters or latent_sample");
        Output = _output == "latent_parameters" ? VaeEncoderOutput.LatentParameters : VaeEncoderOutput.LatentSample;
        InputType = ElementType(_input, true, TensorElementType.Float, TensorElementType.Float16);
    }

    public static VaeEncoder Load(string folder, SessionSettings settings)
    {
        var model = OnnxModel.Load(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new VaeEncoder(model));
    }

    public (float[] Values, long[] Shape) Encode(ReadOnlySpan<float> image, long[] shape, CancellationToken cancellation = default)
    {
        var outputs = RunFloat(Model, [_input], [Tensors.Float(image, shape, InputType)], [_output], cancellation, out var shapes);
        return (outputs[0], shapes[0]);
    }
}
