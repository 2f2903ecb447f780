using System.Security.Cryptography;
using AsyncDiffusion.Engine;

namespace AsyncDiffusion.Server.Hosting;

/// <summary>One model clients can pick: its name, A1111-style title and hash, and folder (never shown).</summary>
public sealed record CatalogModel(string Name, string Title, string Hash, string Folder, bool Synthetic);

/// <summary>
/// The listed models and the one currently loaded into the engine. Switching (A1111's
/// <c>sd_model_checkpoint</c>) loads the new model first, then retires the old engine once
/// its jobs have finished.
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    private readonly ServerOptions _options;
    private readonly object _lock = new();
    private DiffusionEngine _engine;

    public IReadOnlyList<CatalogModel> Models { get; }
    public CatalogModel Current { get; private set; }
    public DiffusionEngine Engine { get { lock (_lock) return _engine; } }

    public ModelCatalog(ServerOptions options, ILogger log)
    {
        _options = options;
        var folders = options.Models.Count > 0 ? options.Models : [options.BuiltInModel ?? throw new InvalidOperationException("No model and no built-in model.")];
        Models = folders.Select(f => Describe(f, synthetic: options.Models.Count == 0)).ToArray();
        var duplicate = Models.GroupBy(m => m.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new AsyncDiffusionException($"Two models are named '{duplicate.Key}'; model folders must have distinct names.");
        Current = Models[0];
        if (options.Models.Count == 0)
            log.LogWarning("No --model given: serving the built-in tiny-shapes model (64x64, trained on coloured shapes: \"a red circle on a blue background\").");
        log.LogInformation("Loading model {Name}…", Current.Name);
        _engine = DiffusionEngine.Open(Current.Folder, options.Engine, options.Limits);
    }

    /// <summary>Finds a model by title, name or hash, as A1111 clients refer to them.</summary>
    public CatalogModel? Find(string key)
    {
        key = key.Trim();
        return Models.FirstOrDefault(m => m.Title == key || m.Name == key || m.Hash == key || key.StartsWith(m.Name + " ", StringComparison.Ordinal));
    }

    /// <summary>Raised with the new engine after a model switch.</summary>
    public event Action<DiffusionEngine>? EngineChanged;

    public void Switch(CatalogModel model)
    {
        DiffusionEngine old;
        lock (_lock)
        {
            if (model == Current) return;
            var fresh = DiffusionEngine.Open(model.Folder, _options.Engine, _options.Limits);
            old = _engine;
            _engine = fresh;
            Current = model;
        }
        EngineChanged?.Invoke(_engine);
        _ = Task.Run(async () =>
        {
            for (int i = 0; i < 600 && old.Stats is { } s && s.Queued + s.Running > 0; i++) await Task.Delay(1000);
            old.Dispose();
        });
    }

    private static CatalogModel Describe(string folder, bool synthetic)
    {
        string full = Path.GetFullPath(folder);
        string name = Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar));
        string index = Path.Combine(full, "model_index.json");
        // A1111 hashes the checkpoint file; hashing gigabytes of weights at start-up is not worth it, so the hash covers the folder's index.
        string hash = Convert.ToHexStringLower(SHA256.HashData(File.Exists(index) ? File.ReadAllBytes(index) : System.Text.Encoding.UTF8.GetBytes(name)));
        return new CatalogModel(name, $"{name} [{hash[..10]}]", hash, full, synthetic);
    }

    public void Dispose()
    {
        lock (_lock) _engine.Dispose();
    }
}
