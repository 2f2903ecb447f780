using AsyncDiffusion.Compression;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Quantization;

/// <summary>The one check on real trained weights: TAESD's decoder through the same quantization code as model folders.</summary>
public class TaesdQuantizationTests(ITestOutputHelper log)
{
    [Fact]
    public void TaesdDecoderQuantizedByTheSameCodeDecodesWithin30DbOfFloat()
    {
        var result = TaesdQuantization.Check(ClippingMethod.MinError, SessionSettings.Default);
        foreach (var p in result.Psnr) log.WriteLine($"{p.Image}: {p.PsnrDb:F2} dB");
        Assert.Equal(3, result.Psnr.Count);
        Assert.All(result.Psnr, p => Assert.True(p.PsnrDb >= 30, $"{p.Image}: int8 decode PSNR {p.PsnrDb:F2} dB vs fp32, expected at least 30"));
        // Everything but the first conv (reads the latents) and the last (writes RGB) is int8.
        Assert.Equal(2, result.Record.Kept.Count);
        Assert.All(result.Record.Layers, l => Assert.Equal(Int8Rewriter.StaticConv, l.QuantizedAs));
        Assert.True(result.Record.Layers.Count >= 30);
        Assert.NotNull(result.Record.Calibration);
    }
}
