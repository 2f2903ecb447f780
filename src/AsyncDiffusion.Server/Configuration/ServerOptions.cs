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

    /// <summary>
    /// The server's address as clients reach it (e.g. behind a proxy), used for the image URLs it
    /// hands out; null: the address it listens on.
    /// </summary>
    public string? PublicUrl { get; init; }

    /// <summary>
    /// Host names accepted in the Host header besides the listening address (exact names,
    /// <c>*.example.com</c>, or <c>*</c> for any); other names are refused, which stops DNS rebinding.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];

    /// <summary>Listen beyond loopback without credentials (refused otherwise).</summary>
    public bool InsecurePublic { get; init; }

    /// <summary>A key every API route accepts as <c>Bearer KEY</c> (or as the password of HTTP Basic).</summary>
    public string? ApiKey { get; init; }

    /// <summary>user:pass every API route accepts as HTTP Basic (or as the token of <c>Bearer user:pass</c>).</summary>
    public string? ApiAuth { get; init; }

    public EngineOptions Engine { get; init; } = new() { MaxJobs = 16 };
    public GenerationLimits Limits { get; init; } = new() { MaxSteps = 100, MaxWidth = 1024, MaxHeight = 1024, MaxCount = 8 };

    /// <summary>Largest request body (uploads included).</summary>
    public long MaxBodyBytes { get; init; } = 20 * 1024 * 1024;

    /// <summary>Largest uploaded image, in pixels, checked before decoding.</summary>
    public long MaxImagePixels { get; init; } = 16_000_000;

    /// <summary>How long images returned by URL stay downloadable.</summary>
    public TimeSpan ImageRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Most bytes the images handed out by URL may hold together; the oldest go first.</summary>
    public long ImageStoreBytes { get; init; } = 256L * 1024 * 1024;

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

    /// <summary>Checks the options before anything is loaded; a problem is one <see cref="AsyncDiffusionException"/> naming the option.</summary>
    public ListenAddresses Validate()
    {
        AtLeast(Engine.MaxJobs, 1, "--max-queue");
        AtLeast(Limits.MaxSteps, 1, "--max-steps");
        AtLeast(Limits.MaxCount, 1, "--max-images");
        AtLeast(Math.Min(Limits.MaxWidth, Limits.MaxHeight), 64, "--max-size");
        AtLeast(MaxBodyBytes, 1, "the body size limit");
        AtLeast(MaxImagePixels, 1, "the upload pixel limit");
        AtLeast(ImageStoreBytes, 0, "the image store size");
        if (ImageRetention <= TimeSpan.Zero) throw new AsyncDiffusionException($"the image retention is {ImageRetention}; expected a positive time.");
        if (ApiKey is not null && string.IsNullOrWhiteSpace(ApiKey))
            throw new AsyncDiffusionException("--api-key is empty; give a key (clients send 'Authorization: Bearer KEY') or leave the option out.");
        if (ApiAuth is not null && (ApiAuth.Split(':', 2) is not [{ Length: > 0 }, { Length: > 0 }]))
            throw new AsyncDiffusionException("--api-auth must be user:pass, both parts non-empty.");
        if (PublicUrl is not null && !(Uri.TryCreate(PublicUrl, UriKind.Absolute, out var url) && url.Scheme is "http" or "https"))
            throw new AsyncDiffusionException($"--public-url '{PublicUrl}' is not an absolute http(s) URL; expected e.g. https://images.example.com.");
        if (AllowedHosts.Any(string.IsNullOrWhiteSpace))
            throw new AsyncDiffusionException("--allowed-hosts has an empty name; expected host names such as sd.example.com, *.example.com or *.");
        var listen = ListenAddresses.Parse(Urls);
        if (!listen.LoopbackOnly && ApiKey is null && ApiAuth is null && !InsecurePublic)
            throw new AsyncDiffusionException(
                $"--urls {Urls} listens beyond this machine without credentials, so anyone who can reach it could use the server. Give --api-key KEY (or --api-auth user:pass), or --insecure-public to accept that.");
        return listen;
    }

    private static void AtLeast(long value, long min, string name)
    {
        if (value < min) throw new AsyncDiffusionException($"{name} is {value}; expected {min} or more.");
    }
}

/// <summary>A model served from a checkpoint: A1111's name and sha256 of the file, and how it was imported.</summary>
public sealed record ServedCheckpoint(string Name, string Sha256, CheckpointImport Import);
