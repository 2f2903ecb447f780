using AsyncDiffusion.Imaging;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Randomness;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>
/// Turns one image's latents, as the UNet produces them, into RGB. Each decoder owns its own
/// conventions (the VAE divides by the scaling factor and outputs [-1, 1]; TAESD takes the
/// latents as they are and outputs [0, 1]), so callers never need to know which one they hold.
/// </summary>
public interface ILatentDecoder
{
    RgbImage DecodeImage(ReadOnlySpan<float> latents, int channels, int height, int width, CancellationToken cancellation = default);
}

/// <summary>The VAE decoder: latents [batch, C, h, w] (already divided by the scaling factor) → image [batch, 3, h·f, w·f] in about [-1, 1].</summary>
public sealed class VaeDecoder : ModelComponent, ILatentDecoder
{
    private readonly string _input, _output;
    private readonly LazyVariant<VaeDecoder>? _circular;

    public TensorElementType InputType { get; }
    public int LatentChannels { get; }
    public int ScaleFactor { get; }
    public double ScalingFactor { get; }

    private VaeDecoder(OnnxModel model, string folder, double? scalingFactor, SessionSettings? settings) : base(model)
    {
        _input = InputNamed("latent_sample", 0, "latent_sample, float [batch, 4, h, w]");
        _output = OutputNamed("sample", 0, "sample, float [batch, 3, H, W]");
        InputType = ElementType(_input, true, TensorElementType.Float, TensorElementType.Float16);
        var config = ReadConfig(folder);
        LatentChannels = StaticDimension(_input, true, 1) ?? ConfigInt(config, "latent_channels") ?? 4;
        ScalingFactor = ConfigDouble(config, "scaling_factor") ?? scalingFactor ?? 0.18215;
        var blocks = ConfigInts(config, "block_out_channels");
        ScaleFactor = blocks is { Length: > 0 } ? 1 << (blocks.Length - 1) : ProbeScaleFactor();
        if (settings is not null)
            _circular = new(() =>
            {
                var circular = OnnxModel.LoadRewritten(model.Path, settings, CircularPadding.ApplyOrFail);
                return Guard(circular, () => new VaeDecoder(circular, folder, ScalingFactor, settings: null));
            });
    }

    /// <summary>The same decoder with circular padding in every convolution (seamless tiling), built on first use.</summary>
    public VaeDecoder Circular => _circular?.Value ?? throw new InvalidOperationException("This VAE decoder is already the circular variant.");

    public override void Dispose()
    {
        base.Dispose();
        _circular?.Dispose();
    }

    /// <param name="folder">The vae_decoder/ folder.</param>
    /// <param name="settings">ONNX Runtime session settings.</param>
    /// <param name="scalingFactor">From vae/config.json when the decoder folder has no config of its own.</param>
    public static VaeDecoder Load(string folder, SessionSettings settings, double? scalingFactor = null)
    {
        var model = OnnxModel.Open(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new VaeDecoder(model, folder, scalingFactor, settings));
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

    /// <summary>UNet-space latents ÷ the scaling factor → the VAE → RGB.</summary>
    public RgbImage DecodeImage(ReadOnlySpan<float> latents, int channels, int height, int width, CancellationToken cancellation = default)
    {
        var scaled = new float[latents.Length];
        float factor = (float)ScalingFactor;
        for (int i = 0; i < scaled.Length; i++) scaled[i] = latents[i] / factor;
        var (pixels, shape) = Decode(scaled, [1, channels, height, width], cancellation);
        return LatentImageConversion.ToImage(pixels, 0, (int)shape[3], (int)shape[2]);
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
    private readonly LazyVariant<VaeEncoder>? _circular;

    public TensorElementType InputType { get; }
    public VaeEncoderOutput Output { get; }

    /// <summary>Latents are multiplied by this to reach the UNet's space (the VAE's scaling factor).</summary>
    public double ScalingFactor { get; }

    private VaeEncoder(OnnxModel model, double scalingFactor, SessionSettings? settings, MemoryPolicy memory) : base(model)
    {
        ScalingFactor = scalingFactor;
        // The same tiles as decoding (Stable Diffusion's VAEs downsample by 8): above 768 px an image is encoded in pieces.
        Tiles = new TiledImageEncoder(8, memory.DecodeTileLatent, memory.DecodeOverlapLatent, memory.MaxUntiledLatent);
        _input = InputNamed("sample", 0, "sample, float [batch, 3, H, W]");
        _output = model.OutputNames.Contains("latent_parameters") ? "latent_parameters" : OutputNamed("latent_sample", 0, "latent_parameters or latent_sample");
        Output = _output == "latent_parameters" ? VaeEncoderOutput.LatentParameters : VaeEncoderOutput.LatentSample;
        InputType = ElementType(_input, true, TensorElementType.Float, TensorElementType.Float16);
        if (settings is not null)
            _circular = new(() =>
            {
                var circular = OnnxModel.LoadRewritten(model.Path, settings, CircularPadding.ApplyOrFail);
                // Tiles would wrap around at their own edges, not the image's: the seamless variant encodes whole.
                return Guard(circular, () => new VaeEncoder(circular, scalingFactor, settings: null, memory with { MaxUntiledLatent = int.MaxValue }));
            });
    }

    /// <summary>How images too large to encode at once are split (see <see cref="TiledImageEncoder"/>).</summary>
    public TiledImageEncoder Tiles { get; }

    /// <summary>The same encoder with circular padding in its convolutions (seamless tiling, img2img), built on first use.</summary>
    public VaeEncoder Circular => _circular?.Value ?? throw new InvalidOperationException("This VAE encoder is already the circular variant.");

    public override void Dispose()
    {
        base.Dispose();
        _circular?.Dispose();
    }

    /// <param name="folder">The vae_encoder/ folder.</param>
    /// <param name="settings">ONNX Runtime session settings.</param>
    /// <param name="scalingFactor">The VAE's scaling factor (the decoder reads it from the configs).</param>
    public static VaeEncoder Load(string folder, SessionSettings settings, double scalingFactor)
    {
        var model = OnnxModel.Open(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new VaeEncoder(model, scalingFactor, settings, settings.Memory));
    }

    public (float[] Values, long[] Shape) Encode(ReadOnlySpan<float> image, long[] shape, CancellationToken cancellation = default)
    {
        var outputs = RunFloat(Model, [_input], [Tensors.Float(image, shape, InputType)], [_output], cancellation, out var shapes);
        return (outputs[0], shapes[0]);
    }

    /// <summary>An image already at the generation size → its latent distribution (sampled per image later, with that image's generator).</summary>
    public InitImageLatents EncodeImage(RgbImage image, CancellationToken cancellation = default)
    {
        var tensor = new float[3 * image.Width * image.Height];
        LatentImageConversion.ToTensor(image, tensor);
        return EncodeTensor(tensor, image.Width, image.Height, cancellation);
    }

    /// <summary>An image given as a [3, H, W] tensor in [-1, 1] (e.g. a masked image) → its latent distribution.</summary>
    public InitImageLatents EncodeTensor(float[] chw, int width, int height, CancellationToken cancellation = default)
    {
        var values = Tiles.Encode(chw, width, height, (piece, w, h) => Encode(piece, [1, 3, h, w], cancellation).Values, cancellation);
        return new InitImageLatents(values, Output, (float)ScalingFactor);
    }
}

/// <summary>The VAE encoder's output for an init image: mean ‖ log-variance, or a sampled latent; and how to reach the UNet's space.</summary>
public sealed record InitImageLatents(float[] Values, VaeEncoderOutput Output, float ScalingFactor)
{
    /// <summary>Elements of one latent (C·h·w).</summary>
    public int LatentSize => Output == VaeEncoderOutput.LatentParameters ? Values.Length / 2 : Values.Length;

    /// <summary>
    /// Clean UNet-space latents: a sample of the distribution drawn from <paramref name="rng"/>
    /// (diffusers' <c>latent_dist.sample(generator)</c>; old exports sampled inside the graph),
    /// times the scaling factor.
    /// </summary>
    public float[] Sample(INoiseGenerator rng)
    {
        int n = LatentSize;
        var clean = new float[n];
        if (Output == VaeEncoderOutput.LatentParameters)
        {
            var eps = new float[n];
            rng.NextGaussian(eps);
            for (int i = 0; i < n; i++)
            {
                float logvar = Math.Clamp(Values[n + i], -30f, 20f);
                clean[i] = Values[i] + MathF.Exp(0.5f * logvar) * eps[i];
            }
        }
        else Array.Copy(Values, clean, n);
        for (int i = 0; i < n; i++) clean[i] *= ScalingFactor;
        return clean;
    }
}
