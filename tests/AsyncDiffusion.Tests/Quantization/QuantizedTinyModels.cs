using AsyncDiffusion.Compression;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Quantization;

/// <summary>An int8 copy of the tiny synthetic model, written once per test run and shared (read-only) by the tests.</summary>
public static class QuantizedTinyModels
{
    private static readonly Lazy<(string Folder, QuantizeResult Result)> Quantized = new(() =>
    {
        string folder = Path.Combine(Directory.CreateTempSubdirectory("asyncdiffusion-int8-").FullName, "tiny-int8");
        var result = ModelQuantizer.Quantize(TinyModels.Folder(), folder, new QuantizeOptions { CalibrationSteps = 4, MeasureQuality = false });
        return (folder, result);
    });

    public static string Folder => Quantized.Value.Folder;
    public static QuantizeResult Result => Quantized.Value.Result;
}
