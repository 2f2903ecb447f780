return AsyncDiffusion.Cli.CliApp.Run(args);
