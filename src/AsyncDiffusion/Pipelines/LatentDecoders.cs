using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The decoders a driver picks from: the model's VAE, and TAESD (built on first use from the
/// weights in the library) for requests that ask for it and for live previews. Latents larger
/// than the memory policy's limit (96×96 by default: 768 px for SD) are decoded in overlapping
/// tiles, so decoding memory stops growing with the image's area. Seamless-tiling requests get
/// the circular variants, decoded whole (a decode tile's own edges would wrap onto themselves).
/// Owns TAESD.
/// </summary>
public sealed class LatentDecoders : IDisposable
{
    private readonly Lazy<TaesdDecoder> _taesd;
    private readonly Lazy<ILatentDecoder> _tiledTaesd;
    private readonly ILatentDecoder _tiledVae;
    private readonly Lazy<TaesdDecoder> _circularTaesd;
    private readonly ModelFolder _model;

    public LatentDecoders(ModelFolder model, SessionSettings settings)
    {
        _taesd = new(() => Taesd.LoadDecoder(settings));
        var memory = settings.Memory;
        _tiledTaesd = new(() => new TiledLatentDecoder(_taesd.Value, scaleFactor: 8, memory.DecodeTileLatent, memory.DecodeOverlapLatent, memory.MaxUntiledLatent));
        _tiledVae = new TiledLatentDecoder(model.VaeDecoder, model.VaeScaleFactor, memory.DecodeTileLatent, memory.DecodeOverlapLatent, memory.MaxUntiledLatent);
        _circularTaesd = new(() => Taesd.LoadDecoder(settings, circular: true));
        _model = model;
    }

    /// <param name="kind">The decoder the request asked for.</param>
    /// <param name="tiling">Seamless tiling: the decoder's convolutions pad circularly.</param>
    public ILatentDecoder For(DecoderKind kind, bool tiling = false) => (kind, tiling) switch
    {
        (DecoderKind.Taesd, false) => _tiledTaesd.Value,
        (DecoderKind.Taesd, true) => _circularTaesd.Value,
        (_, true) => _model.VaeDecoder.Circular,
        _ => _tiledVae,
    };

    /// <summary>The cheap decoder for progress previews.</summary>
    public ILatentDecoder Preview => _tiledTaesd.Value;

    public void Dispose()
    {
        if (_taesd.IsValueCreated) _taesd.Value.Dispose();
        if (_circularTaesd.IsValueCreated) _circularTaesd.Value.Dispose();
    }
}
