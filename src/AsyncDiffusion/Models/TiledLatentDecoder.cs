using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Models;

/// <summary>
/// Decodes large latents in overlapping tiles and blends the seams, so a decoder's working
/// memory stays that of one tile whatever the image size. Latents up to
/// <see cref="MaxUntiledLatent"/> on both sides are decoded whole, exactly as before. Each tile's
/// pixels are weighted by how far they are from the tile's inner edges (a linear ramp across
/// the overlap), so neighbouring tiles fade into each other instead of meeting at a seam.
/// </summary>
public sealed class TiledLatentDecoder(ILatentDecoder inner, int scaleFactor, int tileLatent = 64, int overlapLatent = 16, int maxUntiledLatent = 96)
    : ILatentDecoder
{
    public int TileLatent { get; } = tileLatent > overlapLatent * 2 ? tileLatent : throw new ArgumentOutOfRangeException(nameof(tileLatent), "A tile must be more than twice the overlap.");
    public int OverlapLatent { get; } = overlapLatent;
    public int MaxUntiledLatent { get; } = maxUntiledLatent;

    public RgbImage DecodeImage(ReadOnlySpan<float> latents, int channels, int height, int width, CancellationToken cancellation = default)
    {
        if (height <= MaxUntiledLatent && width <= MaxUntiledLatent) return inner.DecodeImage(latents, channels, height, width, cancellation);

        int f = scaleFactor, outW = width * f, outH = height * f;
        var sum = new float[outW * outH * 3];
        var weight = new float[outW * outH];
        foreach (int y0 in Starts(height))
            foreach (int x0 in Starts(width))
            {
                cancellation.ThrowIfCancellationRequested();
                int th = Math.Min(TileLatent, height), tw = Math.Min(TileLatent, width);
                var tile = new float[channels * th * tw];
                for (int c = 0; c < channels; c++)
                    for (int y = 0; y < th; y++)
                        latents.Slice(c * height * width + (y0 + y) * width + x0, tw).CopyTo(tile.AsSpan(c * th * tw + y * tw, tw));
                var pixels = inner.DecodeImage(tile, channels, th, tw, cancellation);
                Accumulate(pixels, x0 * f, y0 * f, x0 > 0, y0 > 0, x0 + tw < width, y0 + th < height, sum, weight, outW);
            }

        var image = RgbImage.Create(outW, outH);
        for (int i = 0; i < weight.Length; i++)
            for (int c = 0; c < 3; c++)
                image.Pixels[i * 3 + c] = (byte)Math.Clamp(MathF.Round(sum[i * 3 + c] / weight[i], MidpointRounding.ToEven), 0, 255);
        return image;
    }

    private IEnumerable<int> Starts(int length) => TileGrid.Starts(length, TileLatent, OverlapLatent);

    private void Accumulate(RgbImage tile, int left, int top, bool rampLeft, bool rampTop, bool rampRight, bool rampBottom, float[] sum, float[] weight, int outW)
    {
        int ramp = OverlapLatent * scaleFactor;
        for (int y = 0; y < tile.Height; y++)
        {
            float wy = TileGrid.Ramp(y, tile.Height, ramp, rampTop, rampBottom);
            for (int x = 0; x < tile.Width; x++)
            {
                float w = wy * TileGrid.Ramp(x, tile.Width, ramp, rampLeft, rampRight);
                int o = (top + y) * outW + left + x, p = (y * tile.Width + x) * 3;
                weight[o] += w;
                for (int c = 0; c < 3; c++) sum[o * 3 + c] += w * tile.Pixels[p + c];
            }
        }
    }
}
