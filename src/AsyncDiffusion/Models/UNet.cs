using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>How a UNet export takes its timestep.</summary>
public enum TimestepKind
{
    /// <summary>int64 [batch] (diffusers' converter before Nov 2022); fractional timesteps are truncated, as that pipeline did.</summary>
    Int64PerItem,
    /// <summary>float [batch] (later converter, optimum ≤ 1.23).</summary>
    FloatPerItem,
    /// <summary>float [1]: one timestep for the whole batch.</summary>
    FloatShared,
    /// <summary>0-d float (optimum ≥ 1.24): one timestep for the whole batch.</summary>
    FloatScalar,
}

/// <summary>
/// The denoising UNet: (sample, timestep, text states) → predicted noise (or v) for the latents.
/// A text-to-image UNet's sample is the latents alone; an inpainting UNet (SD 1.5/2.x inpainting
/// exports) takes 2·C + 1 channels: the latents, the mask (1 = repaint) and the masked image's latents.
/// </summary>
public sealed class UNet : ModelComponent
{
    private readonly string _sample, _timestep, _context, _output;
    private readonly LazyVariant<UNet>? _circular;

    public TensorElementType SampleType { get; }
    public TensorElementType TimestepType { get; }
    public TimestepKind Timestep { get; }
    /// <summary>Channels of the latents the UNet denoises (its output).</summary>
    public int LatentChannels { get; }

    /// <summary>Channels of its sample input: <see cref="LatentChannels"/>, or 2·C + 1 for an inpainting UNet.</summary>
    public int InputChannels { get; }

    /// <summary>Whether the sample carries the mask and the masked image's latents after the latents (9 channels for SD).</summary>
    public bool IsInpainting => InputChannels == 2 * LatentChannels + 1;

    public int? CrossAttentionDim { get; }

    /// <summary>The graph's names for sample, timestep and text states, in that order.</summary>
    internal IReadOnlyList<string> InputsInOrder => [_sample, _timestep, _context];

    /// <summary>The timestep tensor's shape for a call of <paramref name="batch"/> items.</summary>
    internal long[] TimestepShape(int batch) => Timestep switch
    {
        TimestepKind.FloatScalar => [],
        TimestepKind.FloatShared => [1],
        _ => [batch],
    };

    /// <summary>Whether batch items may have different timesteps (needed to batch steps of different requests).</summary>
    public bool AcceptsPerItemTimesteps => Timestep is TimestepKind.Int64PerItem or TimestepKind.FloatPerItem;

    private UNet(OnnxModel model, string folder, SessionSettings? settings) : base(model)
    {
        foreach (var sdxl in new[] { "text_embeds", "time_ids" })
            if (model.InputNames.Contains(sdxl))
                throw new ModelFolderException($"'{Path}' takes '{sdxl}': that is an SDXL UNet, which AsyncDiffusion does not support yet; supported: SD 1.x and 2.x exports.");
        _sample = InputNamed("sample", 0, "sample, float [batch, 4 (or 9 for inpainting), height/8, width/8]");
        _timestep = InputNamed("timestep", 1, "timestep, int64 [batch], float [batch] or [1], or a 0-d float");
        _context = InputNamed("encoder_hidden_states", 2, "encoder_hidden_states, float [batch, 77, hidden]");
        _output = OutputNamed("out_sample", 0, "out_sample, float like sample");
        SampleType = ElementType(_sample, true, TensorElementType.Float, TensorElementType.Float16);
        ElementType(_context, true, TensorElementType.Float, TensorElementType.Float16);
        TimestepType = ElementType(_timestep, true, TensorElementType.Int64, TensorElementType.Float, TensorElementType.Float16);
        var dims = Dimensions(_timestep, true);
        Timestep = (TimestepType, dims.Length) switch
        {
            (TensorElementType.Int64, _) => TimestepKind.Int64PerItem,
            (_, 0) => TimestepKind.FloatScalar,
            (_, 1) when dims[0] == 1 => TimestepKind.FloatShared,
            (_, 1) => TimestepKind.FloatPerItem,
            _ => throw new ModelFolderException($"'{Path}': input '{_timestep}' has {dims.Length} dimensions; expected a 0-d scalar or [batch]."),
        };
        var config = ReadConfig(folder);
        InputChannels = StaticDimension(_sample, true, 1) ?? ConfigInt(config, "in_channels") ?? 4;
        LatentChannels = StaticDimension(_output, false, 1) ?? ConfigInt(config, "out_channels") ?? (InputChannels == 9 ? 4 : InputChannels);
        if (InputChannels != LatentChannels && !IsInpainting)
            throw new ModelFolderException(InputChannels == 2 * LatentChannels
                ? $"'{Path}' takes {InputChannels} input channels for {LatentChannels}-channel latents: that is an InstructPix2Pix-style UNet (latents + image latents), which AsyncDiffusion does not support; supported: text-to-image UNets ({LatentChannels} channels) and inpainting UNets ({2 * LatentChannels + 1})."
                : $"'{Path}' takes {InputChannels} input channels for {LatentChannels}-channel latents; expected {LatentChannels} (text-to-image) or {2 * LatentChannels + 1} (inpainting: latents, mask, masked-image latents).");
        CrossAttentionDim = StaticDimension(_context, true, -1) ?? ConfigInt(config, "cross_attention_dim");
        SampleSize = ConfigInt(config, "sample_size");
        // Exports upsample by fixed factors, so latents must divide by 2 per down level (SD: 8).
        LatentMultiple = ConfigInts(config, "block_out_channels") is { Length: > 0 } blocks ? 1 << (blocks.Length - 1) : 8;
        if (settings is not null)
            _circular = new(() =>
            {
                var circular = OnnxModel.LoadRewritten(model.Path, settings, CircularPadding.ApplyOrFail);
                return Guard(circular, () => new UNet(circular, folder, settings: null));
            });
    }

    /// <summary>
    /// The same UNet with circular padding in every convolution (seamless tiling), a second
    /// session built on the first tiling request.
    /// </summary>
    public UNet Circular => _circular?.Value ?? throw new InvalidOperationException("This UNet is already the circular variant.");

    /// <summary>The latent size the model was trained at (unet/config.json sample_size), if known.</summary>
    public int? SampleSize { get; }

    /// <summary>Latent width and height must be multiples of this.</summary>
    public int LatentMultiple { get; }

    public static UNet Load(string folder, SessionSettings settings)
    {
        var model = OnnxModel.Open(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new UNet(model, folder, settings));
    }

    /// <summary>
    /// One UNet call. <paramref name="sample"/> is [batch, <see cref="InputChannels"/>, h, w]; <paramref name="timesteps"/> has one
    /// value per batch item (all equal unless <see cref="AcceptsPerItemTimesteps"/>);
    /// <paramref name="context"/> is [batch, tokens, hidden]. Returns the output, [batch, <see cref="LatentChannels"/>, h, w], as float32.
    /// </summary>
    public float[] Predict(ReadOnlySpan<float> sample, long[] sampleShape, ReadOnlySpan<double> timesteps, ReadOnlySpan<float> context, long[] contextShape,
        CancellationToken cancellation = default)
    {
        int batch = (int)sampleShape[0];
        if (timesteps.Length != batch) throw new ArgumentException($"Expected {batch} timesteps, got {timesteps.Length}.", nameof(timesteps));
        if (!AcceptsPerItemTimesteps)
            for (int i = 1; i < batch; i++)
                if (timesteps[i] != timesteps[0])
                    throw new InvalidOperationException($"'{Path}' takes one timestep per call; batch items must share it.");

        var t = new float[Timestep is TimestepKind.Int64PerItem or TimestepKind.FloatPerItem ? batch : 1];
        for (int i = 0; i < t.Length; i++) t[i] = (float)timesteps[i];
        long[] tShape = TimestepShape(batch);

        var inputs = new[]
        {
            Tensors.Float(sample, sampleShape, SampleType),
            Tensors.Float(t, tShape, TimestepType),
            Tensors.Float(context, contextShape, SampleType),
        };
        return RunFloat(Model, [_sample, _timestep, _context], inputs, [_output], cancellation, out _)[0];
    }

    public override void Dispose()
    {
        base.Dispose();
        _circular?.Dispose();
    }
}
