using System.CommandLine;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server;
using AsyncDiffusion.Server.Hosting;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion serve</c>: the HTTP server (A1111 and OpenAI APIs, native jobs, web page).</summary>
public static class ServeCommand
{
    public static Command Create(CliContext cli)
    {
        var models = new Option<string[]>("--model") { Description = "A model folder clients may choose (repeat for several). Default: the built-in tiny-shapes model.", AllowMultipleArgumentsPerToken = true };
        var modelsDir = new Option<string?>("--models-dir") { Description = "Serve every model folder inside this folder." };
        var urls = new Option<string>("--urls") { Description = "Where to listen.", DefaultValueFactory = _ => "http://127.0.0.1:7860" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' (OpenAI and native routes; Basic with password KEY on A1111 routes)." };
        var apiAuth = new Option<string?>("--api-auth") { Description = "Require HTTP Basic user:pass on the A1111 routes." };
        var config = new Option<string?>("--config") { Description = "A tuned configuration from 'asyncdiffusion tune' (default: the saved one, if any)." };
        var maxQueue = new Option<int>("--max-queue") { Description = "Queued + running jobs before 429.", DefaultValueFactory = _ => 16 };
        var maxSize = new Option<int>("--max-size") { Description = "Largest width/height.", DefaultValueFactory = _ => 1024 };
        var maxSteps = new Option<int>("--max-steps") { Description = "Most steps per request.", DefaultValueFactory = _ => 100 };
        var maxImages = new Option<int>("--max-images") { Description = "Most images per request.", DefaultValueFactory = _ => 8 };
        var optimize = new Option<string>("--optimize") { Description = "Graph optimisation: basic (loads ~4× faster) or all (each step ~5-9 % faster).", DefaultValueFactory = _ => "all" };
        var command = new Command("serve", "Serve AUTOMATIC1111's /sdapi/v1 and OpenAI's /v1/images APIs, a native jobs API and a web page.")
        {
            models, modelsDir, urls, apiKey, apiAuth, config, maxQueue, maxSize, maxSteps, maxImages, optimize,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var folders = (parse.GetValue(models) ?? []).ToList();
            if (parse.GetValue(modelsDir) is { } dir)
            {
                if (!Directory.Exists(dir)) throw new AsyncDiffusionException($"--models-dir '{dir}' is not a folder.");
                folders.AddRange(Directory.GetDirectories(dir).Where(d => File.Exists(Path.Combine(d, "model_index.json"))).Order());
            }
            string? apiAuthValue = parse.GetValue(apiAuth);
            if (apiAuthValue is not null && !apiAuthValue.Contains(':')) throw new AsyncDiffusionException("--api-auth must be user:pass.");
            var tuned = TunedConfig.Find(parse.GetValue(config));
            var engine = (tuned?.ToOptions() ?? new EngineOptions()) with
            {
                MaxJobs = Math.Max(1, parse.GetValue(maxQueue)),
                Optimization = Onnx.SessionSettings.ParseOptimization(parse.GetValue(optimize)!),
            };
            var options = new ServerOptions
            {
                Models = folders,
                BuiltInModel = folders.Count == 0 ? BuiltInModel.Ensure() : null,
                DefaultGuidanceScale = folders.Count == 0 ? Models.Synthetic.TinyShapesModel.GuidanceScale : null,
                Urls = parse.GetValue(urls)!,
                ApiKey = parse.GetValue(apiKey),
                ApiAuth = apiAuthValue,
                Engine = engine,
                Limits = new Pipelines.GenerationLimits { MaxWidth = parse.GetValue(maxSize), MaxHeight = parse.GetValue(maxSize), MaxSteps = parse.GetValue(maxSteps), MaxCount = parse.GetValue(maxImages) },
            };
            if (folders.Count == 0) cli.Error.WriteLine(BuiltInModel.Notice);
            var app = ServerApp.Build(options);
            app.Run();
            return 0;
        }));
        return command;
    }
}
