using System.Security.Cryptography;
using System.Text.Json;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>
/// Where converted checkpoints live: <c>$ASYNCDIFFUSION_CHECKPOINT_CACHE</c>, else <c>checkpoints/</c>
/// in the <see cref="UserCache"/> folder.
/// Files are identified by their SHA-256, remembered per path, size and modification time in
/// <c>hashes.json</c> so a multi-GB checkpoint is hashed once, not on every load.
/// </summary>
public sealed class CheckpointCache(string root)
{
    private static readonly object IndexLock = new();
    private readonly Dictionary<string, HashEntry> _pending = new();

    public string Root { get; } = Path.GetFullPath(root);

    public static string DefaultRoot =>
        Environment.GetEnvironmentVariable("ASYNCDIFFUSION_CHECKPOINT_CACHE") is { Length: > 0 } own ? own : UserCache.Folder("checkpoints");

    public static CheckpointCache Default => new(DefaultRoot);

    public string FolderFor(string name) => Path.Combine(Root, name);

    /// <summary>
    /// The file's SHA-256 (lower-case hex), from the index when the file is unchanged; a new hash is
    /// kept in memory until <see cref="Commit"/>, so a failed conversion leaves the cache untouched.
    /// </summary>
    public string Sha256(string file)
    {
        var info = new FileInfo(file);
        string key = info.FullName;
        string stamp = $"{info.Length}:{info.LastWriteTimeUtc.Ticks}";
        lock (IndexLock)
        {
            if (ReadIndex().TryGetValue(key, out var known) && known.Stamp == stamp) return known.Sha256;
        }
        string sha;
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan))
            sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        lock (_pending) _pending[key] = new HashEntry(stamp, sha);
        return sha;
    }

    /// <summary>Remembers the hashes computed since the last commit.</summary>
    public void Commit()
    {
        lock (_pending)
        {
            if (_pending.Count == 0) return;
            lock (IndexLock)
            {
                var index = ReadIndex();
                foreach (var (k, v) in _pending) index[k] = v;
                WriteIndex(index);
            }
            _pending.Clear();
        }
    }

    /// <summary>A hash of the hashes of several files (a diffusers folder, a checkpoint with its --vae).</summary>
    public string Sha256(IEnumerable<string> files)
    {
        var parts = files.Select(f => Sha256(f)).ToList();
        return parts.Count == 1 ? parts[0] : Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", parts))));
    }

    private sealed record HashEntry(string Stamp, string Sha256);

    private string IndexPath => Path.Combine(Root, "hashes.json");

    private Dictionary<string, HashEntry> ReadIndex()
    {
        try
        {
            if (File.Exists(IndexPath))
                return JsonSerializer.Deserialize<Dictionary<string, HashEntry>>(File.ReadAllText(IndexPath)) ?? new();
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            // A damaged index only costs a re-hash.
        }
        return new();
    }

    private void WriteIndex(Dictionary<string, HashEntry> index)
    {
        Directory.CreateDirectory(Root);
        string temp = IndexPath + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(index));
        File.Move(temp, IndexPath, overwrite: true);
    }
}
