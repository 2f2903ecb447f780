using System.Security.Cryptography;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Catalog;

/// <summary>One model clients can pick: its name, A1111-style title and hash, and folder (never shown).</summary>
public sealed record CatalogModel(string Name, string Title, string Hash, string Folder, bool Synthetic);

/// <summary>
/// The listed models and the one currently loaded into the engine. Switching (A1111's
/// <c>sd_model_checkpoint</c>) loads the new model without holding up requests, then makes it
/// current; the old engine finishes its jobs, which stay findable and cancellable, and is
/// disposed when it has none left. Counters add up over every engine, so they never go back.
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    private const int RetiredKept = 4;

    private readonly ServerOptions _options;
    private readonly ILogger _log;
    private readonly Func<string, DiffusionEngine> _open;
    private readonly object _lock = new();                  // held only to read or swap engines, never while loading
    private readonly SemaphoreSlim _switching = new(1, 1);  // one model load at a time
    private readonly List<DiffusionEngine> _retired = new(); // newest last; their jobs stay reachable
    private EngineStats _forgotten = Zero;                  // counters of retired engines no longer kept
    private DiffusionEngine _engine;
    private CatalogModel _current;

    public IReadOnlyList<CatalogModel> Models { get; }
    public CatalogModel Current { get { lock (_lock) return _current; } }
    public DiffusionEngine Engine { get { lock (_lock) return _engine; } }

    /// <param name="options">The listed models and the engine's options.</param>
    /// <param name="log">Where loading is reported.</param>
    /// <param name="open">Opens a model folder as an engine (tests slow it down); default: <see cref="DiffusionEngine.Open"/> with the options.</param>
    public ModelCatalog(ServerOptions options, ILogger log, Func<string, DiffusionEngine>? open = null)
    {
        _options = options;
        _log = log;
        _open = open ?? (folder => DiffusionEngine.Open(folder, options.Engine, options.Limits));
        var folders = options.Models.Count > 0 ? options.Models : [options.BuiltInModel ?? throw new InvalidOperationException("No model and no built-in model.")];
        Models = folders.Select(f => Describe(f, synthetic: options.Models.Count == 0)).ToArray();
        var duplicate = Models.GroupBy(m => m.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new AsyncDiffusionException($"Two models are named '{duplicate.Key}'; model folders must have distinct names.");
        // Every listed folder's files are checked now (fast: no model is loaded), so a broken one stops the start rather than a later switch.
        foreach (var model in Models) AsyncDiffusion.Models.ModelFolder.Validate(model.Folder);
        _current = Models[0];
        if (options.Models.Count == 0)
            log.LogWarning("No --model given: serving the built-in synthetic model (real SD architecture, random weights): images are abstract.");
        log.LogInformation("Loading model {Name}…", _current.Name);
        _engine = _open(_current.Folder);
    }

    /// <summary>Finds a model by title, name or hash, as A1111 clients refer to them.</summary>
    public CatalogModel? Find(string key)
    {
        key = key.Trim();
        return Models.FirstOrDefault(m => m.Title == key || m.Name == key || m.Hash == key || key.StartsWith(m.Name + " ", StringComparison.Ordinal));
    }

    /// <summary>Raised with the new engine after a model switch.</summary>
    public event Action<DiffusionEngine>? EngineChanged;

    /// <summary>A job of the current engine or of one still finishing (or recently finished) on a previous model.</summary>
    public Job? FindJob(string id)
    {
        foreach (var engine in Engines())
            if (engine.Find(id) is { } job) return job;
        return null;
    }

    /// <summary>The job's cached preview from the engine running it; null when there is none.</summary>
    public byte[]? Preview(Job job)
    {
        foreach (var engine in Engines())
            if (ReferenceEquals(engine.Find(job.Id), job))
            {
                try
                {
                    return engine.PreviewPng(job);
                }
                catch (ObjectDisposedException)
                {
                    return null; // its engine was retired between the lookup and the decode; the job has ended
                }
            }
        return null;
    }

    /// <summary>Counters over every engine this catalog has run, so they never go back across a switch; gauges of the engines still working.</summary>
    public EngineStats Stats
    {
        get
        {
            EngineStats total;
            DiffusionEngine[] engines;
            lock (_lock)
            {
                total = _forgotten;
                engines = Engines();
            }
            foreach (var e in engines) total = Add(total, e.Stats);
            return total;
        }
    }

    /// <summary>Makes <paramref name="model"/> current. Requests go on with the current model while the new one loads.</summary>
    public async Task SwitchAsync(CatalogModel model)
    {
        await _switching.WaitAsync();
        try
        {
            if (model == Current) return;
            _log.LogInformation("Loading model {Name}…", model.Name);
            var fresh = await Task.Run(() => _open(model.Folder));
            DiffusionEngine old;
            lock (_lock)
            {
                old = _engine;
                _engine = fresh;
                _current = model;
                _retired.Add(old);
                while (_retired.Count > RetiredKept)
                {
                    _forgotten = Add(_forgotten, _retired[0].Stats);
                    _retired.RemoveAt(0);
                }
            }
            EngineChanged?.Invoke(fresh);
            _ = RetireAsync(old);
        }
        finally
        {
            _switching.Release();
        }
    }

    // The old engine keeps running until its jobs are done (at most 10 minutes), then lets go of its model.
    private static async Task RetireAsync(DiffusionEngine old)
    {
        for (int i = 0; i < 600 && old.Stats is { } s && s.Queued + s.Running > 0; i++) await Task.Delay(1000);
        old.Dispose();
    }

    private DiffusionEngine[] Engines()
    {
        lock (_lock) return [_engine, .. Enumerable.Reverse(_retired)];
    }

    private static readonly EngineStats Zero = new(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    private static EngineStats Add(EngineStats a, EngineStats b) => new(
        a.Queued + b.Queued, a.Running + b.Running, a.Submitted + b.Submitted, a.Succeeded + b.Succeeded, a.Failed + b.Failed,
        a.Cancelled + b.Cancelled, a.Rejected + b.Rejected, a.Images + b.Images, a.UNetCalls + b.UNetCalls, a.UNetRows + b.UNetRows,
        a.PromptCacheHits + b.PromptCacheHits, a.PromptCacheMisses + b.PromptCacheMisses, a.UNetActiveMs + b.UNetActiveMs);

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
        foreach (var engine in Engines()) engine.Dispose();
    }
}
