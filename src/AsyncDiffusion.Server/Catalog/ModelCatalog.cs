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
/// <c>sd_model_checkpoint</c>) loads the new model first, then retires the old engine once
/// its jobs have finished. A prompt with <c>&lt;lora:name:weight&gt;</c> tags switches the same way
/// to the checkpoint's variant with those LoRAs merged (converted once, then cached on disk);
/// a prompt without tags switches back to the plain model.
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    private readonly ServerOptions _options;
    private readonly object _lock = new();
    private readonly ILogger _log;
    private readonly object _variantLock = new();
    private DiffusionEngine _engine;
    private string _variant = ""; // the LoRA set merged into the loaded engine ("" for none)

    public IReadOnlyList<CatalogModel> Models { get; }
    public LoraLibrary Loras { get; }
    public CatalogModel Current { get; private set; }
    public DiffusionEngine Engine { get { lock (_lock) return _engine; } }

    public ModelCatalog(ServerOptions options, ILogger log)
    {
        _options = options;
        _log = log;
        Loras = new LoraLibrary(options.LoraDir);
        foreach (var problem in Loras.Problems) log.LogWarning("LoRA not offered: {Problem}", problem);
        var folders = options.Models.Count > 0 ? options.Models : [options.BuiltInModel ?? throw new InvalidOperationException("No model and no built-in model.")];
        Models = folders.Select(f => Describe(f, builtIn: options.Models.Count == 0, options.Checkpoints)).ToArray();
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
        lock (_variantLock)
        {
            if (model == Current && _variant.Length == 0) return;
            Load(model, model.Folder);
            _variant = "";
        }
    }

    /// <summary>
    /// The engine for a request and the request as the engine should see it: LoRA tags are taken
    /// out of the prompt and the engine switched to the variant with those LoRAs merged.
    /// </summary>
    public (DiffusionEngine Engine, GenerationRequest Request) Prepare(GenerationRequest request)
    {
        var (prompt, uses) = LoraPrompt.Extract(request.Prompt);
        var loras = Loras.Resolve(uses).Where(l => l.Weight != 0).ToList();
        string variant = string.Join(";", loras.Select(l => $"{l.Path}:{l.Weight.ToString("R", CultureInfo.InvariantCulture)}"));
        lock (_variantLock)
        {
            if (variant != _variant)
            {
                var model = Current;
                string folder = model.Folder;
                if (loras.Count > 0)
                {
                    var checkpoint = model.Checkpoint
                        ?? throw new AsyncDiffusionException($"Model '{model.Name}' is an ONNX folder; LoRAs merge into models served from a checkpoint (serve --model FILE.safetensors).");
                    _log.LogInformation("Merging LoRAs {Loras} into {Model}…", string.Join(", ", uses.Select(u => $"{u.Name}:{u.Weight}")), model.Name);
                    var merged = CheckpointConverter.Resolve(checkpoint.Import with { Loras = loras }, new CheckpointCache(_options.CheckpointCache));
                    foreach (var warning in merged.Warnings) _log.LogWarning("{Warning}", warning);
                    folder = merged.Folder;
                }
                Load(model, folder);
                _variant = variant;
            }
            return (Engine, uses.Count == 0 ? request : request with { Prompt = prompt });
        }
    }

    // Opens the new engine first; the old one is retired once its jobs are done.
    private void Load(CatalogModel model, string folder)
    {
        DiffusionEngine old;
        lock (_lock)
        {
            var fresh = DiffusionEngine.Open(folder, _options.Engine, _options.Limits);
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
        lock (_lock) _engine.Dispose();
    }
}
