using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// Where the logical dimensions of an attention operand sit while exporters split it into heads
/// and back: each axis is a string of symbols (b batch, n heads, s query positions, l key
/// positions, h key/query head size, v value head size), "bn" being two merged into one axis.
/// A linear layer's output [B, S, N·H] is <c>["b", "s", "nh"]</c>; the query that enters the
/// score product is <c>["b", "n", "s", "h"]</c> (torch's 4-D form) or <c>["bn", "s", "h"]</c>
/// (the batched-heads form of older diffusers). Reshape and Transpose move between them; a
/// Reshape is accepted only when its target agrees with the dimensions it must produce.
/// </summary>
internal sealed record HeadLayout(string[] Axes)
{
    public int Rank => Axes.Length;

    public static HeadLayout Tokens(char position, char head) => new(["b", position.ToString(), $"n{head}"]);

    public bool Is(params string[] axes) => Axes.SequenceEqual(axes);

    public HeadLayout Transpose(IReadOnlyList<long>? perm)
    {
        var order = perm is { Count: > 0 } ? perm.Select(p => (int)p).ToArray() : Enumerable.Range(0, Rank).Reverse().ToArray();
        if (order.Length != Rank || order.Distinct().Count() != Rank || order.Any(p => p < 0 || p >= Rank)) return this with { Axes = [] };
        return new HeadLayout(order.Select(p => Axes[p]).ToArray());
    }

    /// <summary>
    /// The layout after a Reshape to <paramref name="target"/> (NaN: an element not known here),
    /// or null when the reshape is not one of the head splits and merges, or its known elements
    /// contradict them. <paramref name="size"/> gives a symbol's size where known.
    /// </summary>
    public HeadLayout? Reshape(double[] target, Func<string, long?> size)
    {
        HeadLayout? result = null;
        if (target.Length == Rank + 1)
        {
            // Split the merged heads axis: [.., "nh"] → [.., "n", "h"], or [“bn”, ..] → ["b", "n", ..].
            int at = Array.FindIndex(Axes, a => a.Length == 2 && (a[0] == 'n' || a == "bn"));
            if (at >= 0) result = new HeadLayout([.. Axes[..at], Axes[at][0].ToString(), Axes[at][1].ToString(), .. Axes[(at + 1)..]]);
        }
        else if (target.Length == Rank - 1)
        {
            // Merge ["b", "n", ..] → ["bn", ..] (heads into the batch) or [.., "n", "h"] → [.., "nh"] (heads back together).
            if (Axes[0] == "b" && Axes[1] == "n") result = new HeadLayout(["bn", .. Axes[2..]]);
            else if (Axes[^2] == "n") result = new HeadLayout([.. Axes[..^2], "n" + Axes[^1]]);
        }
        if (result is null || target.Count(t => t == -1) > 1) return null;
        for (int i = 0; i < target.Length; i++)
        {
            double t = target[i];
            if (double.IsNaN(t) || t == -1) continue;
            if (t == 0)
            {
                // ONNX's 0 copies the input's dimension at the same position.
                if (i >= Rank || Axes[i] != result.Axes[i]) return null;
            }
            else if (t < 0 || (size(result.Axes[i]) is long known && known != (long)t)) return null;
        }
        return result;
    }
}
