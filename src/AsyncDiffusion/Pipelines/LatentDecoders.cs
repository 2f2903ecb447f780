using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The decoders a driver picks from: the model's VAE, and TAESD (built on first use from the
/// weights in the library) for requests that ask for it and for live previews. Latents larger
/// than 96×96 (768 px for SD) are decoded in overlapping tiles, so decoding memory stops growing
/// with the image's area. Owns TAESD.
/// </summary>
public sealed class LatentDecoders : IDisposable
{
    private readonly Lazy<TaesdDecoder> _taesd;
    private readonly Lazy<ILatentDecoder> _tiledTaesd;
    private readonly ILatentDecoder _tiledVae;

    public LatentDecoders(ModelFolder model, SessionSettings settings)
    {
        _taesd = new(() => Taesd.LoadDecoder(settings));
        _tiledTaesd = new(() => new TiledLatentDecoder(_taesd.Value, scaleFactor: 8));
        _tiledVae = new TiledLatentDecoder(model.VaeDecoder, model.VaeScaleFactor);
    }

    public ILatentDecoder For(DecoderKind kind) => kind == DecoderKind.Taesd ? _tiledTaesd.Value : _tiledVae;

    /// <summary>The cheap decoder for progress previews.</summary>
    public ILatentDecoder Preview => _tiledTaesd.Value;

    public void Dispose()
    {
        if (_taesd.IsValueCreated) _taesd.Value.Dispose();
    }
}
