namespace AsyncDiffusion.Models;

/// <summary>
/// Where overlapping tiles go along one axis and how much each pixel of a tile counts when
/// neighbours are blended: shared by tiled decoding and tiled encoding.
/// </summary>
internal static class TileGrid
{
    /// <summary>Tile origins along an axis: a step of tile − overlap, the last tile flush with the end.</summary>
    public static IEnumerable<int> Starts(int length, int tile, int overlap)
    {
        if (length <= tile) { yield return 0; yield break; }
        int step = tile - overlap;
        for (int s = 0; ; s += step)
        {
            if (s + tile >= length)
            {
                yield return length - tile;
                yield break;
            }
            yield return s;
        }
    }

    /// <summary>Rises from near 0 at an inner edge to 1 across <paramref name="ramp"/> pixels; edges of the whole keep full weight.</summary>
    public static float Ramp(int i, int length, int ramp, bool fromStart, bool toEnd)
    {
        float w = 1f;
        if (fromStart && i < ramp) w = Math.Min(w, (i + 0.5f) / ramp);
        if (toEnd && length - 1 - i < ramp) w = Math.Min(w, (length - i - 0.5f) / ramp);
        return w;
    }
}
