using System.Text.Json;
using AsyncDiffusion.Cli;

namespace AsyncDiffusion.Tests.Cli;

public class TokenizeCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Fact]
    public void JsonOutputHasIdsInputIdsAndTruncation()
    {
        var (code, output, _) = Run("tokenize", "--json", "a photo of an astronaut riding a horse on mars");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(new[] { 49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407 }, root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(77, root.GetProperty("input_ids").GetArrayLength());
        Assert.False(root.GetProperty("truncated").GetBoolean());
        Assert.Equal("", root.GetProperty("dropped").GetString());
    }

    [Fact]
    public void TableOutputReportsWhatWasTruncated()
    {
        var (code, output, _) = Run("tokenize", string.Join(" ", Enumerable.Repeat("horse", 76)) + " zebra");
        Assert.Equal(0, code);
        Assert.Contains("Truncated", output);
        Assert.Contains("\"horse zebra\"", output);
    }

    [Fact]
    public void ModelFolderTokenizerIsUsed()
    {
        var (code, output, _) = Run("tokenize", "--json", "--model", SharedData.PathOf("data", "models", "pyke-tiny-sd-partial"), "a cat");
        // A real 1000-token test vocabulary: bos is 0, eos is 1.
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(new[] { 0, 197, 68, 434, 1 }, doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void MissingModelFolderIsAClearErrorWithExitCode2()
    {
        var (code, output, error) = Run("tokenize", "--model", "/no/such/folder", "a cat");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("error: --model '/no/such/folder' is not a folder", error);
        Assert.DoesNotContain("   at ", error);
    }
}
