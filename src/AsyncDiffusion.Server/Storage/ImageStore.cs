using System.Collections.Concurrent;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Storage;

/// <summary>Images handed out by URL (OpenAI's default response_format), kept in memory for the retention period.</summary>
public sealed class ImageStore(TimeSpan retention, int maxImages = 512)
{
    private readonly ConcurrentDictionary<string, (byte[] Bytes, string ContentType, DateTime Expires)> _images = new();

    public string Add(byte[] bytes, string contentType, string extension)
    {
        Prune();
        string id = Guid.NewGuid().ToString("N") + extension;
        _images[id] = (bytes, contentType, DateTime.UtcNow + retention);
        return id;
    }

    public (byte[] Bytes, string ContentType)? Get(string id) =>
        _images.TryGetValue(id, out var e) && e.Expires > DateTime.UtcNow ? (e.Bytes, e.ContentType) : null;

    private void Prune()
    {
        var now = DateTime.UtcNow;
        foreach (var (k, v) in _images) if (v.Expires <= now) _images.TryRemove(k, out _);
        if (_images.Count >= maxImages)
            foreach (var k in _images.OrderBy(e => e.Value.Expires).Take(_images.Count - maxImages + 1).Select(e => e.Key)) _images.TryRemove(k, out _);
    }
}
