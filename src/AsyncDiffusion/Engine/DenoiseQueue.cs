using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>
/// The denoise stage's ready queue, for continuous batching: images wait in arrival order; a
/// stream takes the first waiting image plus up to MaxBatch − 1 later ones that can share its
/// UNet call (<see cref="UNetBatch.Compatible"/>) and puts unfinished images back at the end.
/// Every image is stepped in turn, so none starves, and a request joins at its first step and
/// leaves after its last without waiting for others.
/// </summary>
internal sealed class DenoiseQueue(int maxBatch, UNet unet)
{
    private readonly LinkedList<ImageInFlight> _ready = new();
    private readonly object _lock = new();

    public int Waiting
    {
        get { lock (_lock) return _ready.Count; }
    }

    public void Add(ImageInFlight image)
    {
        lock (_lock)
        {
            _ready.AddLast(image);
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Blocks until a batch is available; null once <paramref name="stop"/> is cancelled.</summary>
    public List<ImageInFlight>? Take(CancellationToken stop)
    {
        lock (_lock)
        {
            while (_ready.Count == 0)
            {
                if (stop.IsCancellationRequested) return null;
                Monitor.Wait(_lock, 50);
            }
            var first = _ready.First!;
            _ready.RemoveFirst();
            var batch = new List<ImageInFlight> { first.Value };
            for (var node = _ready.First; node is not null && batch.Count < maxBatch;)
            {
                var next = node.Next;
                if (UNetBatch.Compatible(first.Value.Image, node.Value.Image, unet))
                {
                    batch.Add(node.Value);
                    _ready.Remove(node);
                }
                node = next;
            }
            return batch;
        }
    }
}
