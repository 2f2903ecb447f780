using AsyncDiffusion.Cli;

namespace AsyncDiffusion.Tests.Cli;

/// <summary>Runs the command line in-process and captures what it wrote.</summary>
internal static class CliRun
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CliApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Asserts a refusal as the CLI promises it: exit code 2 and exactly one <c>error:</c> line, which is returned.</summary>
    public static string OneErrorLine(int code, string err)
    {
        Assert.Equal(2, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{err}");
        Assert.StartsWith("error: ", lines[0]);
        return lines[0];
    }
}
