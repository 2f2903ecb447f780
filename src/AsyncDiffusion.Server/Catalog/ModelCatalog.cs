using System.Globalization;
using System.Security.Cryptography;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Catalog;

/// <summary>One model clients can pick: its name, A1111-style title and hash, and folder (never shown); the checkpoint it was converted from, if any.</summary>
public sealed record CatalogModel(string Name, string Title, string Hash, string Folder, bool BuiltIn, ServedCheckpoint? Checkpoint = null);

/// <summary>
/// The listed models and the one currently loaded into the engine. Switching (A1111's
/// <c>sd_model_checkpoint</c>) loads the new model without holding up requests, then makes it
/// current; the old engine finishes its jobs, which stay findable and cancellable, and is
/// disposed when it has none left. A prompt with <c>&lt;lora:name:weight&gt;</c> tags switches the
/// same way to the checkpoint's variant with those LoRAs merged (converted once, then cached on
/// disk); a prompt without tags switches back to the plain model. Counters add up over every
/// engine, so they never go back.
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    private const int RetiredKept = 4;

    private readonly ServerOptions _options;
    private readonly ILogger _log;
    private readonly Func<string, DiffusionEngine> _open;
    private readonly object _lock = new();                  // held only to read or swap engines (or submit to one), never while loading
    private readonly SemaphoreSlim _switching = new(1, 1);  // one model load or LoRA merge at a time
    private readonly List<DiffusionEngine> _retired = new(); // newest last; their jobs stay reachable
    private EngineStats _forgotten = Zero;                  // counters of retired engines no longer kept
    private DiffusionEngine _engine;
    private CatalogModel _current;
    private string _variant = "";                           // the LoRA set merged into the loaded engine ("" for none)

    public IReadOnlyList<CatalogModel> Models { get; }
    public LoraLibrary Loras { get; }
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
        Loras = new LoraLibrary(options.LoraDir);
        foreach (var problem in Loras.Problems) log.LogWarning("LoRA not offered: {Problem}", problem);
        var folders = options.Models.Count > 0 ? options.Models : [options.BuiltInModel ?? throw new InvalidOperationException("No model and no built-in model.")];
        Models = folders.Select(f => Describe(f, builtIn: options.Models.Count == 0, options.Checkpoints)).ToArray();
        var duplicate = Models.GroupBy(m => m.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new AsyncDiffusionException($"Two models are named '{duplicate.Key}'; model folders must have distinct names.");
        // Every listed folder's files are checked now (fast: no model is loaded), so a broken one stops the start rather than a later switch.
        foreach (var model in Models) AsyncDiffusion.Models.ModelFolder.Validate(model.Folder);
        _current = Models[0];
        if (options.Models.Count == 0)
            log.LogWarning("No --model given: serving the built-in tiny-shapes model (64x64, trained on coloured shapes: \"a red circle on a blue background\").");
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

    /// <summary>Makes <paramref name="model"/> current (without LoRAs). Requests go on with the current model while the new one loads.</summary>
    public async Task SwitchAsync(CatalogModel model)
    {
        await _switching.WaitAsync();
        try
        {
            lock (_lock)
                if (model == _current && _variant.Length == 0) return;
            await LoadAsync(model, model.Folder, "");
        }
        finally
        {
            _switching.Release();
        }
    }

    /// <summary>
    /// Submits <paramref name="request"/> to the engine it asks for: LoRA tags are taken out of the
    /// prompt and the engine switched to the variant with those LoRAs merged. A request that needs
    /// no switch is submitted at once, even while another variant loads.
    /// </summary>
    public async Task<Job> SubmitAsync(GenerationRequest request)
    {
        var (prompt, uses) = LoraPrompt.Extract(request.Prompt);
        var loras = Loras.Resolve(uses).Where(l => l.Weight != 0).ToList();
        string variant = string.Join(";", loras.Select(l => $"{l.Path}:{l.Weight.ToString("R", CultureInfo.InvariantCulture)}"));
        var prepared = uses.Count == 0 ? request : request with { Prompt = prompt };
        // Submitting under the lock: a swap cannot retire (and dispose) the engine between choosing it and admitting the job.
        lock (_lock)
            if (_variant == variant) return _engine.Submit(prepared);
        await _switching.WaitAsync();
        try
        {
            CatalogModel model;
            lock (_lock)
            {
                if (_variant == variant) return _engine.Submit(prepared); // loaded by the request ahead of this one
                model = _current;
            }
            string folder = model.Folder;
            if (loras.Count > 0)
            {
                var checkpoint = model.Checkpoint
                    ?? throw new AsyncDiffusionException($"Model '{model.Name}' is an ONNX folder; LoRAs merge into models served from a checkpoint (serve --model FILE.safetensors).");
                _log.LogInformation("Merging LoRAs {Loras} into {Model}…", string.Join(", ", uses.Select(u => $"{u.Name}:{u.Weight}")), model.Name);
                var merged = await Task.Run(() => CheckpointConverter.Resolve(checkpoint.Import with { Loras = loras }, new CheckpointCache(_options.CheckpointCache)));
                foreach (var warning in merged.Warnings) _log.LogWarning("{Warning}", warning);
                folder = merged.Folder;
            }
            await LoadAsync(model, folder, variant);
            lock (_lock) return _engine.Submit(prepared); // still ours: swaps wait for the switching slot this holds
        }
        finally
        {
            _switching.Release();
        }
    }

    // Loads outside the lock (the caller holds the switching slot), then swaps; the old engine is retired once its jobs are done.
    private async Task LoadAsync(CatalogModel model, string folder, string variant)
    {
        _log.LogInformation("Loading model {Name}…", model.Name);
        var fresh = await Task.Run(() => _open(folder));
        DiffusionEngine old;
        lock (_lock)
        {
            old = _engine;
            _engine = fresh;
            _current = model;
            _variant = variant;
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

    private static CatalogModel Describe(string folder, bool builtIn, IReadOnlyDictionary<string, ServedCheckpoint> checkpoints)
    {
        string full = Path.GetFullPath(folder);
        // A1111 names a checkpoint by its file and hashes the file: so do we for models converted from one.
        if (checkpoints.TryGetValue(full, out var checkpoint) || checkpoints.TryGetValue(folder, out checkpoint))
            return new CatalogModel(checkpoint.Name, $"{checkpoint.Name} [{checkpoint.Sha256[..10]}]", checkpoint.Sha256, full, false, checkpoint);
        string name = Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar));
        string index = Path.Combine(full, "model_index.json");
        // A1111 hashes the checkpoint file; hashing gigabytes of weights at start-up is not worth it, so the hash covers the folder's index.
        string hash = Convert.ToHexStringLower(SHA256.HashData(File.Exists(index) ? File.ReadAllBytes(index) : System.Text.Encoding.UTF8.GetBytes(name)));
        return new CatalogModel(name, $"{name} [{hash[..10]}]", hash, full, builtIn);
    }

    public void Dispose()
    {
        foreach (var engine in Engines()) engine.Dispose();
    }
}
