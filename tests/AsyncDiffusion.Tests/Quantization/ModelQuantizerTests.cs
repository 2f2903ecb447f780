using System.Text.Json.Nodes;
using AsyncDiffusion.Compression;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Models;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Quantization;

public class ModelQuantizerTests(ITestOutputHelper log)
{
    [Fact]
    public void QuantizedFolderRecordsScalesBesideEachModelAndMarksTheModelIndex()
    {
        string folder = QuantizedTinyModels.Folder;
        var result = QuantizedTinyModels.Result;
        Assert.Equal(QuantizeOptions.AllComponents, result.Components.Keys);
        foreach (var component in QuantizeOptions.AllComponents)
        {
            var record = QuantizationRecord.Load(Path.Combine(folder, component));
            Assert.NotNull(record);
            Assert.Equal(component, record.Component);
            Assert.NotEmpty(record.Layers);
            Assert.All(record.Layers, l => Assert.NotEmpty(l.WeightScales));
            Assert.All(record.Layers.Where(l => l.QuantizedAs == Int8Rewriter.StaticConv), l =>
            {
                Assert.NotNull(l.Input);
                Assert.NotNull(l.Output);
                Assert.True(l.Input.Mode == ActivationModes.PerCall || l.Input.Scale > 0);
                Assert.True(l.Output.Scale > 0);
            });
            Assert.All(record.Kept, k => Assert.False(string.IsNullOrEmpty(k.Reason)));
        }
        Assert.Null(QuantizationRecord.Load(Path.Combine(folder, "unet"))!.Kept.FirstOrDefault(k => k.Reason.Contains("no calibration")));
        Assert.NotNull(QuantizationRecord.Load(Path.Combine(folder, "unet"))!.Calibration);
        Assert.Null(QuantizationRecord.Load(Path.Combine(folder, "text_encoder"))!.Calibration); // linear layers only: nothing to calibrate

        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model_index.json")))!.AsObject();
        Assert.Equal("int8", index[ModelQuantizer.MarkerKey]!["scheme"]!.GetValue<string>());
        Assert.Equal(4, index[ModelQuantizer.MarkerKey]!["components"]!.AsObject().Count);
        Assert.Equal("tiny", index[ModelFolder.SyntheticMarkerKey]!["preset"]!.GetValue<string>()); // still random weights
        // Same external-data layout as the source; the float weights are gone.
        Assert.Equal(OnnxGraphInfo.ExternalDataFiles(Path.Combine(TinyModels.Folder(), "unet", "model.onnx")),
            OnnxGraphInfo.ExternalDataFiles(Path.Combine(folder, "unet", "model.onnx")));
        Assert.True(result.Bytes < result.SourceBytes);
        Assert.False(Directory.Exists(Path.Combine(folder, ".calibration")));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(folder)!, "*.partial-*"));
    }

    [Fact]
    public void QuantizedFolderLoadsAndGeneratesLikeAnyModel()
    {
        using var model = ModelFolder.Open(QuantizedTinyModels.Folder);
        Assert.NotNull(model.Quantization);
        Assert.Equal(QuantizeOptions.AllComponents, model.Quantization.Keys);
        using var pipeline = new StableDiffusionPipeline(model);
        var result = pipeline.Generate(new GenerationRequest { Prompt = "a lighthouse", Steps = 3, Seed = 5 });
        Assert.Equal(64, result.Images[0].Image.Width);
        var img2img = pipeline.Generate(new GenerationRequest { Prompt = "a lighthouse", Steps = 3, Seed = 5, InitImage = result.Images[0].Image, Strength = 0.6 });
        Assert.Single(img2img.Images);
    }

    [Fact]
    public void OrtRunsNoFloatConvOrMatMulOfTheQuantizedUNetOutsideTheKeptLayers()
    {
        string unet = Path.Combine(QuantizedTinyModels.Folder, "unet");
        var record = QuantizationRecord.Load(unet)!;
        using var dir = new TempFolder();
        var graph = Onnx.Graphs.Rewriting.OnnxGraph.Load(Path.Combine(unet, "model.onnx"));
        var optimised = OrtGraphs.Optimised(graph.ToBytes(), Path.Combine(dir.Path, "optimised.onnx"));
        var (floatLayers, int8Layers) = OrtGraphs.CountWeightLayers(optimised);
        log.WriteLine($"optimised graph: {floatLayers} float weight layers, {int8Layers} int8; kept: {string.Join(", ", record.Kept.Select(k => k.Weight))}");
        Assert.Equal(record.Kept.Count, floatLayers);
        Assert.Equal(record.Layers.Count, int8Layers);
        Assert.All(record.Kept, k => Assert.Matches("^(first|last) convolution|^time embedding", k.Reason));
    }

    [Fact]
    public void QualityReportComparesTheUNetAtEveryTimestepEndToEndAndOnTaesd()
    {
        using var dir = new TempFolder();
        var result = ModelQuantizer.Quantize(TinyModels.Folder(), Path.Combine(dir.Path, "int8"), new QuantizeOptions { CalibrationSteps = 4 });
        var q = result.Quality!;
        log.WriteLine(q.ToJson());
        Assert.Equal(QualityMeasurement.Timesteps, q.UNetOutput.Select(t => t.Timestep));
        Assert.All(q.UNetOutput, t => Assert.True(t.OutputSnrDb is > 5 and < 100, $"t={t.Timestep}: {t.OutputSnrDb} dB"));
        Assert.Equal(result.Components.Values.Sum(r => r.Layers.Count), q.WeightSqnr.Count);
        Assert.All(q.WeightSqnr, l => Assert.True(l.WeightSqnrDb > 30));
        var e = q.EndToEnd!;
        Assert.Equal("64x64", e.Size);
        Assert.True(e.ImagePsnrDb is > 10 and < 100, $"image PSNR {e.ImagePsnrDb}");
        Assert.True(e.VaeDecoderPsnrDb > 25, $"VAE decoder PSNR {e.VaeDecoderPsnrDb}");
        Assert.Equal(3, q.Taesd.Count);
        Assert.All(q.Taesd, t => Assert.True(t.PsnrDb >= 30));
    }

    [Fact]
    public void LegacyExportsKeepTheirWeightsFileAndSamplingEncoder()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "legacy-int8");
        ModelQuantizer.Quantize(TinyModels.Folder("legacy"), output, new QuantizeOptions { CalibrationSteps = 2, MeasureQuality = false });
        Assert.Equal(["weights.pb"], OnnxGraphInfo.ExternalDataFiles(Path.Combine(output, "unet", "model.onnx")));
        using var model = ModelFolder.Open(output);
        Assert.Equal(TimestepKind.Int64PerItem, model.UNet.Timestep);
        Assert.Equal(VaeEncoderOutput.LatentSample, model.VaeEncoder!.Output);
        Assert.Contains("RandomNormalLike", OnnxGraphInfo.OperatorTypes(Path.Combine(output, "vae_encoder", "model.onnx")));
        using var pipeline = new StableDiffusionPipeline(model);
        Assert.Single(pipeline.Generate(new GenerationRequest { Prompt = "x", Steps = 2, Seed = 1 }).Images);
    }

    [Fact]
    public void ExcludedAndChosenComponentsStayFloat()
    {
        using var dir = new TempFolder();
        string output = Path.Combine(dir.Path, "int8");
        var result = ModelQuantizer.Quantize(TinyModels.Folder(), output,
            new QuantizeOptions { Components = ["unet"], Exclude = ["*attn2*"], CalibrationSteps = 2, MeasureQuality = false });
        Assert.Equal(["unet"], result.Components.Keys);
        Assert.Null(QuantizationRecord.Load(Path.Combine(output, "vae_decoder")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(TinyModels.Folder(), "vae_decoder", "model.onnx")), File.ReadAllBytes(Path.Combine(output, "vae_decoder", "model.onnx")));
        var unet = QuantizationRecord.Load(Path.Combine(output, "unet"))!;
        Assert.Contains(unet.Kept, k => k.Weight.Contains(".attn2.") && k.Reason == "excluded by pattern '*attn2*'");
        Assert.DoesNotContain(unet.Layers, l => l.Weight.Contains(".attn2."));
    }
}
