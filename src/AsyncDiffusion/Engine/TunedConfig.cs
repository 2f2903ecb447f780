using System.Text.Json;

namespace AsyncDiffusion.Engine;

/// <summary>
/// The engine configuration <c>asyncdiffusion tune</c> chose by measurement, saved as JSON and read
/// back with <c>--config</c> (or from the default location) by benchmark and serve. <c>ExclusiveCompute</c>:
/// heavy calls take turns (true; also what files written before the tuner measured it mean).
/// </summary>
public sealed record TunedConfig(int Streams, int MaxBatch, int Concurrency, double LatencyCapMs, double ImagesPerMinute, double P99Ms,
    string Model, string Size, int Steps, string Machine, DateTime MeasuredAt, bool ExclusiveCompute = true)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static string DefaultPath
    {
        get
        {
            string? config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (string.IsNullOrWhiteSpace(config))
                config = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(config, "asyncdiffusion", "tuned.json");
        }
    }

    public EngineOptions ToOptions(EngineOptions? start = null) =>
        (start ?? new EngineOptions()) with { Mode = EngineMode.Async, Streams = Streams, MaxBatch = MaxBatch, MaxJobs = Math.Max(32, 4 * Concurrency), ExclusiveCompute = ExclusiveCompute };

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(this, Json) + "\n");
    }

    public static TunedConfig Load(string path)
    {
        if (!File.Exists(path)) throw new AsyncDiffusionException($"Tuned configuration '{path}' not found; run 'asyncdiffusion tune' to make one.");
        try
        {
            var config = JsonSerializer.Deserialize<TunedConfig>(File.ReadAllText(path), Json)
                ?? throw new AsyncDiffusionException($"'{path}' is empty; expected a tuned configuration.");
            if (config.Streams < 1 || config.MaxBatch < 1)
                throw new AsyncDiffusionException($"'{path}': streams {config.Streams} and max_batch {config.MaxBatch} must be at least 1.");
            return config;
        }
        catch (JsonException e)
        {
            throw new AsyncDiffusionException($"'{path}' is not a tuned configuration ({e.Message}).");
        }
    }

    /// <summary>The configuration at <paramref name="path"/>, else the default file if it exists, else null.</summary>
    public static TunedConfig? Find(string? path) => path is not null ? Load(path) : File.Exists(DefaultPath) ? Load(DefaultPath) : null;
}
