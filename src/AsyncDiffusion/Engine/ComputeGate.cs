namespace AsyncDiffusion.Engine;

/// <summary>
/// Slots for the heavy ONNX Runtime calls of the stages (text encoder, VAE encoder, UNet,
/// decoders). With one slot per stream, stages still overlap their light work (tokenizing,
/// noise, PNG encoding, bookkeeping) but never run more ONNX Runtime threads than the engine was
/// given: on a machine that one request already fills, overlapping heavy calls only makes them
/// compete for the same cores. A gate with no slots (0) lets every call through.
/// </summary>
internal sealed class ComputeGate(int slots)
{
    private readonly SemaphoreSlim? _slots = slots > 0 ? new SemaphoreSlim(slots, slots) : null;

    public int Slots => slots;

    /// <summary>Waits for a slot; dispose the result to give it back.</summary>
    public Slot Enter(CancellationToken cancellation)
    {
        _slots?.Wait(cancellation);
        return new Slot(_slots);
    }

    public readonly struct Slot(SemaphoreSlim? slots) : IDisposable
    {
        public void Dispose() => slots?.Release();
    }
}
