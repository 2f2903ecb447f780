using System.Security.Cryptography;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Randomness;

namespace AsyncDiffusion.Cluster.Contracts;

/// <summary>
/// A generation request as it is stored and sent between nodes: plain values, the model it
/// needs, a resolved seed (so every node, and every re-execution, makes the same images) and
/// the img2img source as lossless PNG.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ClusterRequest
{
    [Id(0)] public required string Model { get; init; }
    [Id(1)] public string Prompt { get; init; } = "";
    [Id(2)] public string NegativePrompt { get; init; } = "";
    [Id(3)] public int Steps { get; init; }
    [Id(4)] public double GuidanceScale { get; init; }
    [Id(5)] public int? Width { get; init; }
    [Id(6)] public int? Height { get; init; }
    [Id(7)] public long Seed { get; init; }
    [Id(8)] public int Count { get; init; }
    [Id(9)] public string? Scheduler { get; init; }
    [Id(10)] public byte[]? InitImagePng { get; init; }
    [Id(11)] public double Strength { get; init; }
    [Id(12)] public int Decoder { get; init; }
    [Id(13)] public int Rng { get; init; }
    [Id(14)] public double Eta { get; init; }
    [Id(15)] public bool CfgAsBatch { get; init; }
    [Id(16)] public long Subseed { get; init; } = -1;
    [Id(17)] public double SubseedStrength { get; init; }
    [Id(18)] public int SeedResizeFromWidth { get; init; }
    [Id(19)] public int SeedResizeFromHeight { get; init; }
    [Id(20)] public ClusterHires? Hires { get; init; }
    // Ids from 30 on: room below for other fields added in parallel.
    [Id(30)] public int ClipSkip { get; init; } = 1;
    [Id(31)] public bool Tiling { get; init; }

    public static ClusterRequest From(GenerationRequest r, string model) => new()
    {
        Model = model,
        Prompt = r.Prompt,
        NegativePrompt = r.NegativePrompt,
        Steps = r.Steps,
        GuidanceScale = r.GuidanceScale,
        Width = r.Width,
        Height = r.Height,
        Seed = r.Seed,
        Count = r.Count,
        Scheduler = r.Scheduler,
        InitImagePng = r.InitImage is { } image ? ImageCodec.Encode(image, ImageFormat.Png) : null,
        Strength = r.Strength,
        Decoder = (int)r.Decoder,
        Rng = (int)r.Rng,
        Eta = r.Eta,
        CfgAsBatch = r.CfgAsBatch,
        Subseed = r.Subseed,
        SubseedStrength = r.SubseedStrength,
        SeedResizeFromWidth = r.SeedResizeFromWidth,
        SeedResizeFromHeight = r.SeedResizeFromHeight,
        Hires = r.Hires is { } h ? ClusterHires.From(h) : null,
        ClipSkip = r.ClipSkip,
        Tiling = r.Tiling,
    };

    public GenerationRequest ToGenerationRequest() => new()
    {
        Prompt = Prompt,
        NegativePrompt = NegativePrompt,
        Steps = Steps,
        GuidanceScale = GuidanceScale,
        Width = Width,
        Height = Height,
        Seed = Seed,
        Count = Count,
        Scheduler = Scheduler,
        InitImage = InitImagePng is { } png ? ImageCodec.Decode(png, "init image") : null,
        Strength = Strength,
        Decoder = (DecoderKind)Decoder,
        Rng = (NoiseGeneratorKind)Rng,
        Eta = Eta,
        CfgAsBatch = CfgAsBatch,
        Subseed = Subseed,
        SubseedStrength = SubseedStrength,
        SeedResizeFromWidth = SeedResizeFromWidth,
        SeedResizeFromHeight = SeedResizeFromHeight,
        Hires = Hires?.ToOptions(),
        ClipSkip = ClipSkip,
        Tiling = Tiling,
    };

    /// <summary>What the client asked for, before the seed was resolved: an idempotent retry must ask for the same.</summary>
    public string Fingerprint() => Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(this)));
}

/// <summary>Hires fix's options as they travel between nodes.</summary>
[GenerateSerializer, Immutable]
public sealed record ClusterHires
{
    [Id(0)] public double Scale { get; init; }
    [Id(1)] public int ResizeWidth { get; init; }
    [Id(2)] public int ResizeHeight { get; init; }
    [Id(3)] public string? Upscaler { get; init; }
    [Id(4)] public int Steps { get; init; }
    [Id(5)] public double DenoisingStrength { get; init; }
    [Id(6)] public string? Scheduler { get; init; }
    [Id(7)] public string? Prompt { get; init; }
    [Id(8)] public string? NegativePrompt { get; init; }

    public static ClusterHires From(HiresOptions h) => new()
    {
        Scale = h.Scale, ResizeWidth = h.ResizeWidth, ResizeHeight = h.ResizeHeight, Upscaler = h.Upscaler, Steps = h.Steps,
        DenoisingStrength = h.DenoisingStrength, Scheduler = h.Scheduler, Prompt = h.Prompt, NegativePrompt = h.NegativePrompt,
    };

    public HiresOptions ToOptions() => new()
    {
        Scale = Scale, ResizeWidth = ResizeWidth, ResizeHeight = ResizeHeight, Upscaler = Upscaler, Steps = Steps,
        DenoisingStrength = DenoisingStrength, Scheduler = Scheduler, Prompt = Prompt, NegativePrompt = NegativePrompt,
    };
}
