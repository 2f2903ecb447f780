using AsyncDiffusion.Imaging;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Onnx.Graphs.Rewriting;

namespace AsyncDiffusion.Compression;

/// <summary>
/// The one check on real trained weights available without shipping a full model: TAESD's
/// decoder, quantized by the same code as model folders, calibrated on the latents of other
/// instances of the test patterns, and compared with the float decoder on the test images.
/// </summary>
public static class TaesdQuantization
{
    public const int ImageSize = 128;
    private const int CalibrationVariants = 3;

    public sealed record Result(QuantizationRecord Record, IReadOnlyList<ImagePsnr> Psnr);

    public static Result Check(ClippingMethod clipping, SessionSettings settings)
    {
        using var encoder = Taesd.LoadEncoder(settings);
        var graph = OnnxGraph.FromBytes(Taesd.BuildDecoder(Taesd.BuiltInDecoderWeights), "TAESD decoder");
        var plan = LayerSelection.Plan(graph, []);
        var collector = new CalibrationCollector(plan.CalibrationTensors);
        using (var calibration = new TaesdDecoder(OnnxModel.FromBytes(Int8Quantizer.CalibrationModel(graph, plan), "TAESD decoder (calibration)", settings)))
        {
            calibration.Model.Observer = collector;
            foreach (var kind in TestPatterns.Kinds)
                for (int variant = 1; variant <= CalibrationVariants; variant++)
                {
                    var (latents, shape) = Encode(encoder, kind, variant);
                    calibration.Decode(latents, shape);
                }
        }
        var record = Int8Quantizer.Apply(graph, "taesd_decoder", plan, collector, clipping, $"TAESD latents of {collector.Runs} pattern images");

        using var fp32 = Taesd.LoadDecoder(settings);
        using var int8 = new TaesdDecoder(OnnxModel.FromBytes(graph.ToBytes(), "TAESD decoder (int8)", settings));
        var psnr = new List<ImagePsnr>();
        foreach (var kind in TestPatterns.Kinds)
        {
            var (latents, shape) = Encode(encoder, kind, 0);
            var a = Clamp(fp32.Decode(latents, shape).Image);
            var b = Clamp(int8.Decode(latents, shape).Image);
            psnr.Add(new ImagePsnr(kind, Math.Round(SignalComparison.PsnrDb(a, b), 2)));
        }
        return new Result(record, psnr);
    }

    private static (float[] Latents, long[] Shape) Encode(TaesdEncoder encoder, string kind, int variant) =>
        encoder.Encode(TestPatterns.Chw(kind, ImageSize, variant), [1, 3, ImageSize, ImageSize]);

    private static float[] Clamp(float[] image) => image.Select(v => Math.Clamp(v, 0f, 1f)).ToArray();
}
