using AsyncDiffusion.Engine;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Server.Hosting;

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
}
