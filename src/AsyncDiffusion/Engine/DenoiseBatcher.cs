using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

/// <summary>One image of a running job, as it moves between the denoise, decode and encode stages.</summary>
internal sealed class ImageWork(JobRun run, ImageJob image)
{
    public JobRun Run { get; } = run;
    public ImageJob Image { get; } = image;
    public Imaging.RgbImage? Decoded { get; set; }
}

/// <summary>
/// The denoise stage's ready queue, for continuous batching: images wait in arrival order; a
/// stream takes the first waiting image plus up to MaxBatch − 1 later ones whose UNet call is
/// compatible (same latent shape; same timestep too when the export takes one timestep per call)
/// and puts unfinished images back at the end. Every image is stepped in turn, so none starves,
/// and a request joins at its first step and leaves after its last without waiting for others.
/// </summary>
internal sealed class DenoiseBatcher(int maxBatch, bool perItemTimesteps)
{
    private readonly LinkedList<ImageWork> _ready = new();
    private readonly object _lock = new();

    public int Waiting
    {
        get { lock (_lock) return _ready.Count; }
    }

    public void Add(ImageWork work)
    {
        lock (_lock)
        {
            _ready.AddLast(work);
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Blocks until a batch is available; null once <paramref name="stop"/> is cancelled.</summary>
    public List<ImageWork>? Take(CancellationToken stop)
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
            var batch = new List<ImageWork> { first.Value };
            for (var node = _ready.First; node is not null && batch.Count < maxBatch;)
            {
                var next = node.Next;
                if (Compatible(first.Value, node.Value))
                {
                    batch.Add(node.Value);
                    _ready.Remove(node);
                }
                node = next;
            }
            return batch;
        }
    }

    private bool Compatible(ImageWork a, ImageWork b)
    {
        var x = a.Image;
        var y = b.Image;
        if (x.Channels != y.Channels || x.LatentHeight != y.LatentHeight || x.LatentWidth != y.LatentWidth) return false;
        return perItemTimesteps || x.Timestep == y.Timestep;
    }
}
