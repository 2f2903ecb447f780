using System.Text.Json;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Cli;

public class ModelsEvaluateCommandTests
{
    [Fact]
    public void EvaluatePrintsScoresAndEveryVerdictAsJsonAndDrawsTheGrid()
    {
        using var dir = new TempFolder();
        string grid = Path.Combine(dir.Path, "grid.png");
        var (code, output, error) = CliRun.Run("models", "evaluate", "--model", TinyShapesModelTests.Folder, "--prompts", "3", "--seeds", "2",
            "--steps", "8", "--json", "--grid", grid);
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(6, root.GetProperty("samples").GetArrayLength());
        Assert.Equal("a green circle on a red background", root.GetProperty("samples")[0].GetProperty("prompt").GetString());
        Assert.Equal(2, root.GetProperty("samples")[1].GetProperty("seed").GetInt64());
        double shape = root.GetProperty("scores").GetProperty("shape").GetDouble();
        Assert.InRange(shape, 0, 1);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(grid)[..4]);
    }

    [Theory]
    [InlineData("--prompts", "0", "--prompts is 0")]
    [InlineData("--prompts", "41", "--prompts is 41")]
    [InlineData("--seeds", "0", "--seeds is 0")]
    [InlineData("--scheduler", "Warp", "Unknown scheduler 'Warp'")]
    public void BadEvaluateOptionsExitWith2(string option, string value, string message)
    {
        var (code, _, error) = CliRun.Run("models", "evaluate", "--model", TinyShapesModelTests.Folder, option, value);
        Assert.Equal(2, code);
        Assert.StartsWith("error:", error);
        Assert.Contains(message, error);
    }
}
