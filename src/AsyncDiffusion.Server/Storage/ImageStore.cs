using System.Collections.Concurrent;

namespace AsyncDiffusion.Server.Storage;

/// <summary>
/// Images handed out by URL (OpenAI's default response_format), kept in memory for the
/// retention period; at most <paramref name="maxImages"/> of them holding at most
/// <paramref name="maxBytes"/>, the oldest going first.
/// </summary>
public sealed class ImageStore(TimeSpan retention, long maxBytes, int maxImages = 512)
{
    private readonly ConcurrentDictionary<string, (byte[] Bytes, string ContentType, DateTime Expires)> _images = new();
    private readonly object _pruning = new();
    private long _bytes;

    public long Bytes => Interlocked.Read(ref _bytes);

    public string Add(byte[] bytes, string contentType, string extension)
    {
        string id = Guid.NewGuid().ToString("N") + extension;
        _images[id] = (bytes, contentType, DateTime.UtcNow + retention);
        Interlocked.Add(ref _bytes, bytes.Length);
        Prune();
        return id;
    }

    public (byte[] Bytes, string ContentType)? Get(string id) =>
        _images.TryGetValue(id, out var e) && e.Expires > DateTime.UtcNow ? (e.Bytes, e.ContentType) : null;

    private void Prune()
    {
        lock (_pruning)
        {
            var now = DateTime.UtcNow;
            foreach (var (k, v) in _images)
                if (v.Expires <= now) Remove(k);
            if (_images.Count <= maxImages && Bytes <= maxBytes) return;
            foreach (var k in _images.OrderBy(e => e.Value.Expires).Select(e => e.Key).ToList())
            {
                if (_images.Count <= maxImages && Bytes <= maxBytes) break;
                Remove(k);
            }
        }
    }

    private void Remove(string id)
    {
        if (_images.TryRemove(id, out var e)) Interlocked.Add(ref _bytes, -e.Bytes.Length);
    }
}
