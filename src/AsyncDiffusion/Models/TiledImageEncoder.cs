namespace AsyncDiffusion.Models;

/// <summary>
/// Encodes large images in overlapping tiles and blends the tiles' latents (mean and
/// log-variance alike, or samples) with the linear ramps <see cref="TiledLatentDecoder"/> uses, so
/// an encoder's working memory stays that of one tile whatever the image size. Images whose
/// latents are up to <see cref="MaxUntiledLatent"/> on both sides are encoded whole, exactly as
/// before.
/// </summary>
public sealed class TiledImageEncoder(int scaleFactor, int tileLatent = 64, int overlapLatent = 16, int maxUntiledLatent = 96)
{
    public int TileLatent { get; } = tileLatent > overlapLatent * 2 ? tileLatent : throw new ArgumentOutOfRangeException(nameof(tileLatent), "A tile must be more than twice the overlap.");
    public int OverlapLatent { get; } = overlapLatent;
    public int MaxUntiledLatent { get; } = maxUntiledLatent;

    /// <summary>Encodes a [3, H, W] image; <paramref name="encode"/> turns a [3, h, w] piece into [C, h/f, w/f] latents.</summary>
    public float[] Encode(float[] chw, int width, int height, Func<float[], int, int, float[]> encode, CancellationToken cancellation = default)
    {
        int f = scaleFactor, lw = width / f, lh = height / f;
        bool fits = lh <= MaxUntiledLatent && lw <= MaxUntiledLatent;
        if (fits || width % f != 0 || height % f != 0) return encode(chw, width, height);

        int th = Math.Min(TileLatent, lh), tw = Math.Min(TileLatent, lw), tilePixelsW = tw * f, tilePixelsH = th * f;
        float[]? sum = null;
        var weight = new float[lh * lw];
        var tile = new float[3 * tilePixelsH * tilePixelsW];
        foreach (int y0 in TileGrid.Starts(lh, TileLatent, OverlapLatent))
            foreach (int x0 in TileGrid.Starts(lw, TileLatent, OverlapLatent))
            {
                cancellation.ThrowIfCancellationRequested();
                for (int c = 0; c < 3; c++)
                    for (int y = 0; y < tilePixelsH; y++)
                        Array.Copy(chw, c * height * width + (y0 * f + y) * width + x0 * f, tile, (c * tilePixelsH + y) * tilePixelsW, tilePixelsW);
                float[] latent = encode(tile, tilePixelsW, tilePixelsH);
                if (latent.Length == 0 || latent.Length % (th * tw) != 0)
                    throw new AsyncDiffusionException(
                        $"The VAE encoder returned {latent.Length} values for a {tilePixelsW}×{tilePixelsH} tile; expected channels × {tw}×{th} (an {f}× smaller latent).");
                int channels = latent.Length / (th * tw);
                sum ??= new float[channels * lh * lw];
                if (sum.Length != channels * lh * lw)
                    throw new AsyncDiffusionException($"The VAE encoder returned {channels} latent channels for one tile and a different number for another.");
                Accumulate(latent, channels, th, tw, x0, y0, lw, lh, sum, weight);
            }

        int plane = lh * lw;
        var result = new float[sum!.Length];
        for (int c = 0; c < sum.Length / plane; c++)
            for (int i = 0; i < plane; i++) result[c * plane + i] = sum[c * plane + i] / weight[i];
        return result;
    }

    private void Accumulate(float[] latent, int channels, int th, int tw, int x0, int y0, int lw, int lh, float[] sum, float[] weight)
    {
        bool left = x0 > 0, top = y0 > 0, right = x0 + tw < lw, bottom = y0 + th < lh;
        for (int y = 0; y < th; y++)
        {
            float wy = TileGrid.Ramp(y, th, OverlapLatent, top, bottom);
            for (int x = 0; x < tw; x++)
            {
                float w = wy * TileGrid.Ramp(x, tw, OverlapLatent, left, right);
                int o = (y0 + y) * lw + x0 + x;
                weight[o] += w;
                for (int c = 0; c < channels; c++) sum[c * lh * lw + o] += w * latent[(c * th + y) * tw + x];
            }
        }
    }
}
