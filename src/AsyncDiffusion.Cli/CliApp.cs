using System.CommandLine;
using System.CommandLine.Help;
using AsyncDiffusion.Cli.Commands;
using Spectre.Console;

namespace AsyncDiffusion.Cli;

/// <summary>The <c>asyncdiffusion</c> command line: one subcommand per job, each in Commands/.</summary>
public static class CliApp
{
    public const string Name = "asyncdiffusion";

    /// <summary>Runs the command line with the given writers (tests pass their own).</summary>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = ReferenceEquals(output, Console.Out) ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(output, Console.Out) ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        var context = new CliContext(console, output, error);

        // A plain Command as root, so help shows "asyncdiffusion" whatever the executable is called.
        var root = new Command(Name, "AsyncDiffusion: Stable Diffusion inference on ONNX Runtime, built for CPUs and many requests at once.")
        {
            Options = { new HelpOption(), new VersionOption() },
        };
        root.Subcommands.Add(TokenizeCommand.Create(context));
        root.Subcommands.Add(GenerateCommand.Create(context));
        root.Subcommands.Add(ModelsCommand.Create(context));
        root.Subcommands.Add(BenchmarkCommand.Create(context));
        root.Subcommands.Add(BenchmarkCommand.CreateProbe(context));
        root.Subcommands.Add(TuneCommand.Create(context));
        root.Subcommands.Add(ServeCommand.Create(context));

        var parse = root.Parse(args);
        return parse.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }
}

/// <summary>What every command writes to: a Spectre console for people, raw writers for JSON and errors.</summary>
public sealed record CliContext(IAnsiConsole Console, TextWriter Output, TextWriter Error)
{
    public const int BadInput = 2;

    public const int Cancelled = 130;

    /// <summary>
    /// Runs long work that Ctrl-C cancels: the body gets a token that Ctrl-C trips, and a
    /// cancellation ends with one line and exit code 130 (the body leaves nothing half-written).
    /// </summary>
    public int Cancellable(Func<CancellationToken, int> body)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        System.Console.CancelKeyPress += onCancel;
        try
        {
            return body(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            Error.WriteLine("Cancelled; nothing was written.");
            return Cancelled;
        }
        finally
        {
            System.Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>Runs a command body; bad input becomes one clear line on stderr and exit code 2, never a stack trace.</summary>
    public int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (AsyncDiffusionException e)
        {
            Error.WriteLine($"error: {e.Message}");
            return BadInput;
        }
    }
}
