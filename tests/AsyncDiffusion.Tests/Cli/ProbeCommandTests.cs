using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Cli;

public class ProbeCommandTests
{
    [Theory]
    [InlineData(new[] { "probe", "--roofline" }, "--roofline needs --model")]
    [InlineData(new[] { "probe", "--model", "MODEL" }, "either --attention")]
    [InlineData(new[] { "probe", "--model", "MODEL", "--attention", "--roofline" }, "either --attention")]
    [InlineData(new[] { "probe", "--model", "MODEL", "--roofline", "--size", "100x64" }, "--size '100x64'")]
    [InlineData(new[] { "probe", "--model", "/nowhere", "--roofline" }, "has no unet/model.onnx")]
    public void ModelMeasurementsRefuseWhatTheyCannotMeasure(string[] args, string expected)
    {
        var (code, _, error) = CliRun.Run(args.Select(a => a == "MODEL" ? TinyModels.Folder("optimum") : a).ToArray());
        Assert.Contains(expected, CliRun.OneErrorLine(code, error)); // exit code 2 and one line, not a stack trace
    }

    [Fact]
    public void TheRooflineOfAModelsUNetStepIsPrintedAsJson()
    {
        var (code, output, error) = CliRun.Run("probe", "--roofline", "--model", TinyModels.Folder("optimum"), "--size", "64x64", "--rounds", "1", "--threads", "1", "--json");
        Assert.True(code == 0, error);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.Equal("64x64", doc.RootElement.GetProperty("Size").GetString());
        Assert.Equal(1, doc.RootElement.GetProperty("Rounds").GetArrayLength());
        Assert.True(doc.RootElement.GetProperty("MedianPercent").GetDouble() > 0);
    }
}
