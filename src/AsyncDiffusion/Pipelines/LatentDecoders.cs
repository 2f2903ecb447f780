using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The decoders a driver picks from: the model's VAE, and TAESD (built on first use from the
/// weights in the library) for requests that ask for it and for live previews. Owns TAESD.
/// </summary>
public sealed class LatentDecoders(ModelFolder model, SessionSettings settings) : IDisposable
{
    private readonly Lazy<TaesdDecoder> _taesd = new(() => Taesd.LoadDecoder(settings));

    public ILatentDecoder For(DecoderKind kind) => kind == DecoderKind.Taesd ? _taesd.Value : model.VaeDecoder;

    /// <summary>The cheap decoder for progress previews.</summary>
    public TaesdDecoder Preview => _taesd.Value;

    public void Dispose()
    {
        if (_taesd.IsValueCreated) _taesd.Value.Dispose();
    }
}
