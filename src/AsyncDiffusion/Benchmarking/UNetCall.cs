using System.Diagnostics;
using AsyncDiffusion.Models;

namespace AsyncDiffusion.Benchmarking;

/// <summary>
/// One timed UNet call at an image size with seeded random inputs, batch 2 as with
/// classifier-free guidance: the unit the UNet measurements (fused against exported attention,
/// the roofline) time again and again.
/// </summary>
internal sealed class UNetCall
{
    public const int Batch = 2, TextTokens = 77;
    private const int VaeFactor = 8; // the UNet sees latents of 1/8 the image size
    private readonly float[] _sample, _context;
    private readonly long[] _sampleShape, _contextShape;

    public UNetCall(UNet unet, int width, int height, string folder)
    {
        int hidden = unet.CrossAttentionDim ?? throw new AsyncDiffusionException(
            $"'{folder}': the width of encoder_hidden_states is not in the graph (a dynamic last dimension) nor in config.json (cross_attention_dim); add cross_attention_dim to the UNet's config.json.");
        _sampleShape = [Batch, unet.InputChannels, height / VaeFactor, width / VaeFactor];
        _contextShape = [Batch, TextTokens, hidden];
        var rng = new Random(5);
        _sample = Enumerable.Range(0, (int)_sampleShape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        _context = Enumerable.Range(0, Batch * TextTokens * hidden).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
    }

    /// <summary>The graph's input shapes for this call, by input name (for counting FLOPs).</summary>
    public Dictionary<string, long[]> InputShapes(UNet unet) => new()
    {
        [unet.InputsInOrder[0]] = _sampleShape,
        [unet.InputsInOrder[1]] = unet.TimestepShape(Batch),
        [unet.InputsInOrder[2]] = _contextShape,
    };

    /// <summary>One call of <paramref name="unet"/> (this UNet or one of the same shape), in milliseconds.</summary>
    public double Time(UNet unet)
    {
        var clock = Stopwatch.StartNew();
        unet.Predict(_sample, _sampleShape, [500.0, 500.0], _context, _contextShape);
        return clock.Elapsed.TotalMilliseconds;
    }
}
