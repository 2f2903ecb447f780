// Run with: dotnet run -c Release --project bench/AsyncDiffusion.Benchmarks -- --filter '*'
BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(AsyncDiffusion.Benchmarks.HotPathBenchmarks).Assembly).Run(args);
