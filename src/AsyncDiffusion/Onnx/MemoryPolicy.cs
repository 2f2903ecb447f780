namespace AsyncDiffusion.Onnx;

/// <summary>
/// How a generation trades speed for peak memory (see <see cref="Pipelines.MemoryBudget"/>, which
/// picks one for a budget). The default keeps guidance's two halves in one UNet call and decodes
/// latents up to 768 px whole. Measured on SD 1.5 at 512 px (fused attention): the default peaks
/// at 5.3 GiB; guidance as two calls saves 0.2 GiB at the same speed; 256-pixel decode tiles
/// save 0.6 GiB and double the decode time.
/// </summary>
public sealed record MemoryPolicy
{
    public static MemoryPolicy Default { get; } = new();

    /// <summary>Guidance's two halves run as two UNet calls of one row instead of one call of two: less UNet working memory, the same arithmetic.</summary>
    public bool SequentialGuidance { get; init; }

    /// <summary>Latents larger than this on a side are decoded in tiles (see <see cref="Models.TiledLatentDecoder"/>), and images that large encoded in tiles (<see cref="Models.TiledImageEncoder"/>).</summary>
    public int MaxUntiledLatent { get; init; } = 96;

    /// <summary>The side of a decode (and encode) tile, in latent pixels (64: 512-pixel tiles for SD).</summary>
    public int DecodeTileLatent { get; init; } = 64;

    /// <summary>The overlap between decode tiles: a quarter of a tile, at most 16 latent pixels.</summary>
    public int DecodeOverlapLatent => Math.Min(16, DecodeTileLatent / 4);

    /// <summary>What the policy changes, for logs and reports.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (SequentialGuidance) parts.Add("guidance as two UNet calls");
        parts.Add(MaxUntiledLatent == Default.MaxUntiledLatent && DecodeTileLatent == Default.DecodeTileLatent
            ? "decode whole up to 768 px"
            : $"decode in {DecodeTileLatent * 8}-px tiles above {MaxUntiledLatent * 8} px");
        return string.Join(", ", parts);
    }
}
