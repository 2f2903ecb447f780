using System.Globalization;
using System.Text.Json;
using AsyncDiffusion.Onnx;

namespace AsyncDiffusion.Pipelines;

/// <summary>A memory policy chosen for a budget, with the peak it is expected to reach.</summary>
public sealed record MemoryPlan(MemoryPolicy Policy, long EstimatedPeakBytes, long WeightBytes, long BudgetBytes)
{
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"memory budget {MemoryBudget.Format(BudgetBytes)}: {Policy}; expected peak {MemoryBudget.Format(EstimatedPeakBytes)} ({MemoryBudget.Format(WeightBytes)} of weights)");
}

/// <summary>
/// <c>--memory-budget</c>: picks the fastest <see cref="MemoryPolicy"/> whose estimated peak
/// fits, or refuses a budget no policy fits. The estimate is the model's weights (its files)
/// plus the process (.NET and ONNX Runtime) plus the UNet's and the VAE decoder's working
/// memory, added up as if each kept its own arena. The working-memory terms were measured on
/// SD 1.5 that way (fused attention, 512 and 768 px, whole and tiled decodes, guidance as one
/// call and as two) and are scaled by the image's latent area and the networks' widths; they
/// overestimated those peaks by 0–8 %. Sessions now share one arena (<see cref="Onnx.SharedCpuArena"/>),
/// so the decoder partly reuses the UNet's memory and the sum is a safe bound (17 % over the
/// measured 512 px peak).
/// </summary>
public static class MemoryBudget
{
    private const long MiB = 1 << 20;
    private const long ProcessBytes = 256 * MiB;
    // UNet: a fixed part and a part per row and 64×64 latent pixels, for a first block of 320 channels.
    private const long UNetFixedBytes = 120 * MiB, UNetPerRowBytes = 115 * MiB;
    // VAE decoder: a fixed part and a part per 64×64 latent pixels decoded at once, for 512 channels at its widest.
    private const long DecodeFixedBytes = 150 * MiB, DecodePerTileBytes = 1000 * MiB;

    /// <summary>The policies tried, fastest first: each saves memory at some cost in speed.</summary>
    public static IReadOnlyList<MemoryPolicy> Candidates { get; } =
    [
        MemoryPolicy.Default,
        MemoryPolicy.Default with { SequentialGuidance = true },
        MemoryPolicy.Default with { SequentialGuidance = true, MaxUntiledLatent = 64 },
        MemoryPolicy.Default with { SequentialGuidance = true, MaxUntiledLatent = 48, DecodeTileLatent = 48 },
        MemoryPolicy.Default with { SequentialGuidance = true, MaxUntiledLatent = 32, DecodeTileLatent = 32 },
    ];

    /// <summary>"6GB", "5.5GiB", "4096MiB", "800MB": a size with its unit (GB and MB are powers of ten, GiB and MiB of two).</summary>
    public static long Parse(string text)
    {
        var t = text.Trim();
        int split = 0;
        while (split < t.Length && (char.IsDigit(t[split]) || t[split] == '.')) split++;
        string unit = t[split..].Trim().ToUpperInvariant();
        long scale = unit switch
        {
            "GB" or "G" => 1_000_000_000L,
            "GIB" => 1L << 30,
            "MB" or "M" => 1_000_000L,
            "MIB" => 1L << 20,
            _ => 0,
        };
        if (scale == 0 || !double.TryParse(t[..split], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value) || value <= 0)
            throw new AsyncDiffusionException($"--memory-budget '{text}' is not a size; expected a number with GB, GiB, MB or MiB, e.g. 6GB or 5.5GiB.");
        return (long)(value * scale);
    }

    public static string Format(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB");

    /// <summary>
    /// The fastest policy for <paramref name="modelFolder"/> at images up to <paramref name="width"/>×<paramref name="height"/>
    /// whose estimated peak is within <paramref name="budgetBytes"/>; a budget that none fits is an error naming the least it needs.
    /// <paramref name="imagesAtOnce"/> is how many images may share the UNet at once (the engine's batch × streams).
    /// </summary>
    public static MemoryPlan Plan(string modelFolder, int width, int height, long budgetBytes, int imagesAtOnce = 1)
    {
        long weights = WeightBytes(modelFolder);
        var plans = Candidates.Select(p => new MemoryPlan(p, Estimate(modelFolder, weights, p, width, height, imagesAtOnce), weights, budgetBytes)).ToArray();
        return plans.FirstOrDefault(p => p.EstimatedPeakBytes <= budgetBytes)
            ?? throw new AsyncDiffusionException(string.Create(CultureInfo.InvariantCulture,
                $"--memory-budget {Format(budgetBytes)} is below what this model needs at {width}×{height}: at least {Format(plans[^1].EstimatedPeakBytes)} ({Format(weights)} of weights, the rest working memory with guidance as two calls and 256-px decode tiles); give a budget of at least that, or a smaller size."));
    }

    /// <summary>
    /// <see cref="Plan"/> before the model is loaded: a size not given is the model's native one
    /// (unet/config.json sample_size × 8, else 512).
    /// </summary>
    public static MemoryPlan PlanBeforeLoading(string modelFolder, int? width, int? height, long budgetBytes, int imagesAtOnce = 1)
    {
        int native = (int)FirstInt(modelFolder, "unet", "sample_size", first: true, fallback: 64) * 8;
        return Plan(modelFolder, width ?? native, height ?? native, budgetBytes, imagesAtOnce);
    }

    /// <summary>The estimated peak of one generation at <paramref name="width"/>×<paramref name="height"/> under <paramref name="policy"/>.</summary>
    public static long Estimate(string modelFolder, long weights, MemoryPolicy policy, int width, int height, int imagesAtOnce = 1)
    {
        int factor = 8;
        double latentH = Math.Ceiling(height / (double)factor), latentW = Math.Ceiling(width / (double)factor);
        double area = latentH * latentW / 4096.0;
        double unetWidth = FirstInt(modelFolder, "unet", "block_out_channels", first: true, fallback: 320) / 320.0;
        double decoderWidth = FirstInt(modelFolder, "vae_decoder", "block_out_channels", first: false, fallback: 512) / 512.0;
        // Guidance as one call: two rows per image; as two calls: one row per image in flight.
        int rows = Math.Max(1, imagesAtOnce) * (policy.SequentialGuidance ? 1 : 2);
        double unet = (UNetFixedBytes + UNetPerRowBytes * rows * area) * unetWidth;

        bool tiled = latentH > policy.MaxUntiledLatent || latentW > policy.MaxUntiledLatent;
        double tileArea = tiled ? Math.Min(latentH, policy.DecodeTileLatent) * Math.Min(latentW, policy.DecodeTileLatent) / 4096.0 : area;
        double decode = (DecodeFixedBytes + DecodePerTileBytes * tileArea) * decoderWidth;
        return ProcessBytes + weights + (long)unet + (long)decode;
    }

    /// <summary>The bytes of every component's files (graphs and external weights).</summary>
    public static long WeightBytes(string modelFolder) =>
        new[] { "text_encoder", "unet", "vae_decoder", "vae_encoder" }
            .Select(c => Path.Combine(modelFolder, c))
            .Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d))
            .Where(f => !f.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            .Sum(f => new FileInfo(f).Length);

    // A number from the component's config.json, or the first (or largest) of a list; SD's value when absent or unreadable.
    private static double FirstInt(string modelFolder, string component, string key, bool first, double fallback)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(modelFolder, component, "config.json")));
            if (!doc.RootElement.TryGetProperty(key, out var value)) return fallback;
            if (value.ValueKind == JsonValueKind.Number) return value.GetDouble() > 0 ? value.GetDouble() : fallback;
            if (value.ValueKind != JsonValueKind.Array) return fallback;
            var values = value.EnumerateArray().Where(v => v.ValueKind == JsonValueKind.Number).Select(v => v.GetDouble()).Where(v => v > 0).ToArray();
            return values.Length == 0 ? fallback : first ? values[0] : values.Max();
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return fallback;
        }
    }
}
