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
}
