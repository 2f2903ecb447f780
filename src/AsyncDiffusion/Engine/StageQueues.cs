using System.Threading.Channels;

namespace AsyncDiffusion.Engine;

/// <summary>
/// The queues between the engine's stages, in the order work flows through them:
/// Submit → <see cref="Prepare"/> (jobs) → <see cref="Denoise"/> (images, batched across
/// requests) → <see cref="Decode"/> (images) → <see cref="Encode"/> (images) → the job registry.
/// Sync mode uses only <see cref="Prepare"/>.
/// </summary>
internal sealed class StageQueues(DenoiseQueue denoise)
{
    public Channel<Job> Prepare { get; } = Channel.CreateUnbounded<Job>(new UnboundedChannelOptions { SingleReader = true });
    public DenoiseQueue Denoise { get; } = denoise;
    public Channel<ImageInFlight> Decode { get; } = Channel.CreateUnbounded<ImageInFlight>(new UnboundedChannelOptions { SingleReader = true });
    public Channel<ImageInFlight> Encode { get; } = Channel.CreateUnbounded<ImageInFlight>(new UnboundedChannelOptions { SingleReader = true });

    public void Complete()
    {
        Prepare.Writer.TryComplete();
        Decode.Writer.TryComplete();
        Encode.Writer.TryComplete();
    }

    /// <summary>Blocking read of a channel on a stage's own thread, until it completes or <paramref name="stop"/> is cancelled.</summary>
    public static IEnumerable<T> Drain<T>(ChannelReader<T> reader, CancellationToken stop)
    {
        while (true)
        {
            T item;
            try
            {
                if (!reader.WaitToReadAsync(stop).AsTask().GetAwaiter().GetResult()) yield break;
                if (!reader.TryRead(out item!)) continue;
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
            yield return item;
        }
    }
}
