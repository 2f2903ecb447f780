using AsyncDiffusion.Engine;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Pipelines;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Tests.Models;

/// <summary>
/// Seamless tiling: convolutions pad circularly. A rewritten convolution equals a convolution
/// over the wrapped image computed by hand; whole circular UNets and decoders commute with
/// rolling their input (the image's edges continue each other), which zero padding breaks.
/// </summary>
public class SeamlessTilingTests
{
    private const int Cin = 3, Cout = 2, H = 6, W = 7;

    public static TheoryData<int, long[], int> Convolutions() => new()
    {
        // opset (17: Slice + Concat, 21: Pad wrap), pads (top, left, bottom, right), stride
        { 17, [1, 1, 1, 1], 1 },
        { 21, [1, 1, 1, 1], 1 },
        { 17, [1, 1, 1, 1], 2 },
        { 21, [1, 1, 1, 1], 2 },
        { 17, [2, 0, 1, 2], 1 },
        { 21, [2, 0, 1, 2], 1 },
    };

    [Theory]
    [MemberData(nameof(Convolutions))]
    public void ARewrittenConvolutionEqualsAConvolutionOverTheWrappedImage(int opset, long[] pads, int stride)
    {
        var weights = Values(Cout * Cin * 9, seed: 1);
        var bias = Values(Cout, seed: 2);
        var x = Values(Cin * H * W, seed: 3);
        var graph = ConvGraph(weights, bias, pads, stride, opset);
        Assert.Equal(1, CircularPadding.Apply(graph));
        Assert.Equal(opset >= 19 ? 1 : 0, graph.Graph.Node.Count(n => n.OpType == "Pad"));
        Assert.All(graph.Graph.Node.Where(n => n.OpType == "Conv"), n => Assert.All(n.Attribute.First(a => a.Name == "pads").Ints, p => Assert.Equal(0, p)));

        using var model = OnnxModel.FromBytes(graph.ToBytes(), "conv", SessionSettings.Default);
        using var input = Tensors.Float(x, [1, Cin, H, W], TensorElementType.Float);
        using var output = model.Run(["x"], [input], ["y"]);
        var actual = output[0].GetTensorDataAsSpan<float>().ToArray();

        var expected = CircularConvolution(x, weights, bias, pads, stride, out int outH, out int outW);
        Assert.Equal([1, Cout, outH, outW], Tensors.Shape(output[0]));
        AssertClose(expected, actual, 1e-5);
    }

    [Fact]
    public void TheTilingUNetCommutesWithRollingItsInputAndThePlainOneDoesNot()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        var latents = Values(4 * 8 * 8, seed: 4);
        var context = Values(77 * 32, seed: 5);
        // The tiny UNet halves the latents once: rolls by multiples of 2 commute with a circular one.
        float[] Predict(UNet unet, float[] x) => unet.Predict(x, [1, 4, 8, 8], [500.0], context, [1, 77, 32]);

        var circular = model.UNet.Circular;
        var rolledFirst = Predict(circular, Roll(latents, 4, 8, 8, dy: 2, dx: 4));
        var rolledAfter = Roll(Predict(circular, latents), 4, 8, 8, dy: 2, dx: 4);
        AssertClose(rolledAfter, rolledFirst, 1e-4);

        var plain = MaxDifference(Roll(Predict(model.UNet, latents), 4, 8, 8, dy: 2, dx: 4), Predict(model.UNet, Roll(latents, 4, 8, 8, dy: 2, dx: 4)));
        Assert.True(plain > 1e-2, $"zero padding should break the symmetry (difference {plain})");
    }

    [Fact]
    public void TheTilingDecodersCommuteWithRollingTheLatents()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        var latents = Values(4 * 8 * 8, seed: 6);
        var rolled = Roll(latents, 4, 8, 8, dy: 3, dx: 1);

        var vae = model.VaeDecoder.Circular;
        AssertClose(Roll(vae.Decode(latents, [1, 4, 8, 8]).Image, 3, 64, 64, dy: 24, dx: 8), vae.Decode(rolled, [1, 4, 8, 8]).Image, 1e-4);
        var plain = MaxDifference(Roll(model.VaeDecoder.Decode(latents, [1, 4, 8, 8]).Image, 3, 64, 64, dy: 24, dx: 8), model.VaeDecoder.Decode(rolled, [1, 4, 8, 8]).Image);
        Assert.True(plain > 1e-2, $"zero padding should break the symmetry (difference {plain})");

        using var taesd = Taesd.LoadDecoder(SessionSettings.Default, circular: true);
        AssertClose(Roll(taesd.Decode(latents, [1, 4, 8, 8]).Image, 3, 64, 64, dy: 24, dx: 8), taesd.Decode(rolled, [1, 4, 8, 8]).Image, 1e-4);
    }

    [Fact]
    public void ATorchExportedDecoderTilesThroughSliceAndConcat()
    {
        // pyke's AutoencoderKL decoder: torch.onnx, opset 15 (no Pad wrap), VAE factor 2.
        using var decoder = VaeDecoder.Load(SharedData.PathOf("data", "models", "pyke-tiny-sd-partial", "vae_decoder"), SessionSettings.Default);
        Assert.Equal(2, decoder.ScaleFactor);
        var latents = Values(4 * 8 * 8, seed: 7);
        var circular = decoder.Circular;
        AssertClose(Roll(circular.Decode(latents, [1, 4, 8, 8]).Image, 3, 16, 16, dy: 2, dx: 6),
            circular.Decode(Roll(latents, 4, 8, 8, dy: 1, dx: 3), [1, 4, 8, 8]).Image, 1e-4);
    }

    [Fact]
    public void ATiledImageWrapsAndSaysSoInItsInfotext()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        using var pipeline = new StableDiffusionPipeline(model);
        var request = new GenerationRequest { Prompt = "a brick wall", Steps = 3, Seed = 21, Decoder = DecoderKind.Taesd };
        var plain = pipeline.Generate(request).Images[0];
        var tiled = pipeline.Generate(request with { Tiling = true }).Images[0];
        Assert.NotEqual(plain.Image.Pixels, tiled.Image.Pixels);
        Assert.DoesNotContain("Tiling", plain.Infotext);
        Assert.Contains("RNG: CPU, Tiling: True, VAE: TAESD", tiled.Infotext);
    }

    [Fact]
    public void HiresFixWithAnImageUpscalerTilesThroughBothPasses()
    {
        using var model = ModelFolder.Open(TinyModels.Folder());
        using var pipeline = new StableDiffusionPipeline(model);
        var request = new GenerationRequest
        {
            Prompt = "a brick wall", Steps = 2, Seed = 21, Tiling = true,
            Hires = new HiresOptions { Scale = 2, Steps = 2, DenoisingStrength = 0.5, Upscaler = "Lanczos" },
        };
        var tiled = pipeline.Generate(request).Images[0];
        Assert.Equal(128, tiled.Image.Width);
        Assert.Contains("Hires upscaler: Lanczos", tiled.Infotext);
        Assert.Contains("Tiling: True", tiled.Infotext);
        Assert.NotEqual(pipeline.Generate(request with { Tiling = false }).Images[0].Image.Pixels, tiled.Image.Pixels);
    }

    [Fact]
    public async Task TilingAndPlainRequestsRunTogetherInTheEngineAsTheyRunAlone()
    {
        using var model = ModelFolder.Open(TinyModels.Folder("optimum"));
        using var engine = new DiffusionEngine(model, new EngineOptions { Streams = 1, MaxBatch = 4 });
        GenerationRequest[] requests =
        [
            new() { Prompt = "stone", Steps = 4, Seed = 1, Tiling = true, Scheduler = "Euler" },
            new() { Prompt = "stone", Steps = 4, Seed = 1, Scheduler = "Euler" },
            new() { Prompt = "moss", Steps = 4, Seed = 2, Tiling = true, Scheduler = "Euler", ClipSkip = 2 },
        ];
        var results = await Task.WhenAll(requests.Select(r => engine.Submit(r).Completion)).WaitAsync(TimeSpan.FromSeconds(60));
        using var sync = new StableDiffusionPipeline(model);
        for (int i = 0; i < requests.Length; i++)
        {
            var expected = sync.Generate(requests[i]).Images[0];
            var actual = results[i].Generation.Images[0];
            int diff = expected.Image.Pixels.Zip(actual.Image.Pixels, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(diff <= 1, $"request {i}: max pixel difference {diff}/255");
            Assert.Equal(expected.Infotext, actual.Infotext);
        }
        Assert.NotEqual(results[0].Generation.Images[0].Image.Pixels, results[1].Generation.Images[0].Image.Pixels);
    }

    private static OnnxGraph ConvGraph(float[] weights, float[] bias, long[] pads, int stride, int opset)
    {
        using var g = new OnnxGraphBuilder("conv", new SeededWeights(0), half: false);
        var x = g.Input("x", global::Onnx.TensorProto.Types.DataType.Float, 1, Cin, H, W);
        var y = g.Op("Conv", [x, g.Parameter("w", [Cout, Cin, 3, 3], weights), g.Parameter("b", [Cout], bias)],
            ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { stride, stride }), ("pads", pads));
        g.Output("y", y, global::Onnx.TensorProto.Types.DataType.Float, 1, Cout, "h", "w");
        var proto = g.Build("test");
        proto.OpsetImport[0].Version = opset;
        return OnnxGraph.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(proto), $"conv (opset {opset})");
    }

    private static float[] CircularConvolution(float[] x, float[] w, float[] b, long[] pads, int stride, out int outH, out int outW)
    {
        int top = (int)pads[0], left = (int)pads[1];
        outH = (H + top + (int)pads[2] - 3) / stride + 1;
        outW = (W + left + (int)pads[3] - 3) / stride + 1;
        var y = new float[Cout * outH * outW];
        for (int o = 0; o < Cout; o++)
            for (int oy = 0; oy < outH; oy++)
                for (int ox = 0; ox < outW; ox++)
                {
                    double sum = b[o];
                    for (int c = 0; c < Cin; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++)
                            {
                                int iy = ((oy * stride + ky - top) % H + H) % H, ix = ((ox * stride + kx - left) % W + W) % W;
                                sum += w[((o * Cin + c) * 3 + ky) * 3 + kx] * x[(c * H + iy) * W + ix];
                            }
                    y[(o * outH + oy) * outW + ox] = (float)sum;
                }
        return y;
    }

    // Each channel's plane shifted down by dy and right by dx, wrapping around.
    private static float[] Roll(float[] x, int channels, int height, int width, int dy, int dx)
    {
        var y = new float[x.Length];
        for (int c = 0; c < channels; c++)
            for (int r = 0; r < height; r++)
                for (int col = 0; col < width; col++)
                    y[(c * height + (r + dy) % height) * width + (col + dx) % width] = x[(c * height + r) * width + col];
        return y;
    }

    private static float[] Values(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private static double MaxDifference(float[] a, float[] b) => a.Zip(b, (p, q) => Math.Abs(p - q)).Max();

    private static void AssertClose(float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = MaxDifference(expected, actual);
        Assert.True(worst <= tolerance, $"largest difference {worst:G3}, allowed {tolerance:G3}");
    }
}
