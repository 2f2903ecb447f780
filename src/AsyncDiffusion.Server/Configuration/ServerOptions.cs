using AsyncDiffusion.Engine;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Server.Configuration;

/// <summary>Everything <c>asyncdiffusion serve</c> can be told.</summary>
public sealed record ServerOptions
{
    /// <summary>Model folders clients may choose from (by name, never by path). Empty: the built-in tiny-shapes model.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    public string Urls { get; init; } = "http://127.0.0.1:7860";

    /// <summary>Bearer key for the OpenAI and native routes (and Basic password for A1111 routes when no --api-auth).</summary>
    public string? ApiKey { get; init; }

    /// <summary>user:pass for HTTP Basic on the A1111 routes.</summary>
    public string? ApiAuth { get; init; }

    public EngineOptions Engine { get; init; } = new() { MaxJobs = 16 };
    public GenerationLimits Limits { get; init; } = new() { MaxSteps = 100, MaxWidth = 1024, MaxHeight = 1024, MaxCount = 8 };

    /// <summary>Largest request body (uploads included).</summary>
    public long MaxBodyBytes { get; init; } = 20 * 1024 * 1024;

    /// <summary>Largest uploaded image, in pixels, checked before decoding.</summary>
    public long MaxImagePixels { get; init; } = 16_000_000;

    /// <summary>How long images returned by URL stay downloadable.</summary>
    public TimeSpan ImageRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The built-in model's folder, used when <see cref="Models"/> is empty (the CLI fills it).</summary>
    public string? BuiltInModel { get; init; }

    /// <summary>Guidance scale for requests that give none; null: each API's own default (A1111 7, the others 7.5). The built-in model wants 2.5.</summary>
    public double? DefaultGuidanceScale { get; init; }

    /// <summary>The checkpoints behind listed model folders (by full folder path): their names, file hashes and imports, for LoRA variants.</summary>
    public IReadOnlyDictionary<string, ServedCheckpoint> Checkpoints { get; init; } = new Dictionary<string, ServedCheckpoint>();

    /// <summary>A folder of LoRA .safetensors files prompts may use as &lt;lora:name:weight&gt;.</summary>
    public string? LoraDir { get; init; }

    /// <summary>Where the A1111 settings clients write (<c>POST /sdapi/v1/options</c>) are kept across restarts; null keeps them in memory only.</summary>
    public string? SdapiOptionsFile { get; init; }

    /// <summary>Where LoRA-merged variants of checkpoint models are converted to and found again.</summary>
    public string CheckpointCache { get; init; } = AsyncDiffusion.Models.Checkpoints.CheckpointCache.DefaultRoot;
}

/// <summary>A model served from a checkpoint: A1111's name and sha256 of the file, and how it was imported.</summary>
public sealed record ServedCheckpoint(string Name, string Sha256, CheckpointImport Import);
