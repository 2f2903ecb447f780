using System.CommandLine;
using AsyncDiffusion.Cluster.Hosting;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server;
using AsyncDiffusion.Server.Configuration;
using Microsoft.Extensions.Hosting;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion serve</c>: the HTTP server (A1111 and OpenAI APIs, native jobs, web page).</summary>
public static class ServeCommand
{
    public static Command Create(CliContext cli)
    {
        var models = new Option<string[]>("--model") { Description = "A model clients may choose (repeat for several): " + CheckpointOptions.ModelHelp + " Default: the built-in tiny-shapes model.", AllowMultipleArgumentsPerToken = true };
        var loraDir = new Option<string?>("--lora-dir") { Description = "LoRA .safetensors files prompts may use as <lora:name:weight> (merged into checkpoint models; listed at /sdapi/v1/loras)." };
        var modelsDir = new Option<string?>("--models-dir") { Description = "Serve every model folder inside this folder." };
        var urls = new Option<string>("--urls") { Description = "Where to listen: IP addresses (0.0.0.0 for all interfaces) or localhost, ';' between URLs.", DefaultValueFactory = _ => "http://127.0.0.1:7860" };
        var publicUrl = new Option<string?>("--public-url") { Description = "The server's address as clients reach it (behind a proxy), for the image URLs it hands out. Default: the listening address." };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host header names to accept besides the listening address (e.g. sd.example.com, *.example.com, or * for any).", AllowMultipleArgumentsPerToken = true };
        var insecurePublic = new Option<bool>("--insecure-public") { Description = "Allow listening beyond this machine without --api-key or --api-auth." };
        var apiKey = new Option<string?>("--api-key") { Description = "Require a key on every API route: 'Authorization: Bearer KEY' (or HTTP Basic with password KEY, for A1111 clients)." };
        var apiAuth = new Option<string?>("--api-auth") { Description = "Require user:pass on every API route: HTTP Basic (A1111 clients), or 'Bearer user:pass' (OpenAI clients)." };
        var config = new Option<string?>("--config") { Description = "A tuned configuration from 'asyncdiffusion tune' (default: the saved one, if any)." };
        var maxQueue = new Option<int>("--max-queue") { Description = "Queued + running jobs before 429.", DefaultValueFactory = _ => 16 };
        var maxSize = new Option<int>("--max-size") { Description = "Largest width/height.", DefaultValueFactory = _ => 1024 };
        var maxSteps = new Option<int>("--max-steps") { Description = "Most steps per request.", DefaultValueFactory = _ => 100 };
        var maxImages = new Option<int>("--max-images") { Description = "Most images per request.", DefaultValueFactory = _ => 8 };
        var optimize = new Option<string>("--optimize") { Description = "Graph optimisation: basic (loads ~4× faster) or all (each step ~5-9 % faster).", DefaultValueFactory = _ => "all" };
        var cluster = new Option<string?>("--cluster") { Description = "Join a cluster: redis://HOST:PORT (membership and jobs in Redis) or localhost (one-machine development cluster)." };
        var nodeName = new Option<string?>("--node-name") { Description = "This node's name in the cluster (distinct per node; default: host name and HTTP port)." };
        var siloPort = new Option<int>("--silo-port") { Description = "Port for node-to-node traffic.", DefaultValueFactory = _ => ClusterConnection.PrimarySiloPort };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads in total (0: one per core).", DefaultValueFactory = _ => 0 };
        var budget = new Option<string?>("--memory-budget") { Description = GenerateCommand.MemoryBudgetHelp + " Planned for the first model at its native size with the engine's batch." };
        var gatewayPort = new Option<int>("--gateway-port") { Description = "Orleans gateway port.", DefaultValueFactory = _ => 30000 };
        var command = new Command("serve", "Serve AUTOMATIC1111's /sdapi/v1 and OpenAI's /v1/images APIs, a native jobs API and a web page.")
        {
            models, modelsDir, loraDir, urls, publicUrl, allowedHosts, insecurePublic, apiKey, apiAuth, config, maxQueue, maxSize, maxSteps, maxImages, optimize, cluster, nodeName, siloPort, gatewayPort, threads, budget,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var modelArguments = parse.GetValue(models) ?? [];
            foreach (var model in modelArguments) CheckpointOptions.RejectOtherFiles(model);
            string? lorasFolder = parse.GetValue(loraDir);
            if (lorasFolder is not null && !Directory.Exists(lorasFolder)) throw new AsyncDiffusionException($"--lora-dir '{lorasFolder}' is not a folder.");
            string? modelsFolder = parse.GetValue(modelsDir);
            if (modelsFolder is not null && !Directory.Exists(modelsFolder)) throw new AsyncDiffusionException($"--models-dir '{modelsFolder}' is not a folder.");
            var tuned = TunedConfig.Find(parse.GetValue(config));
            var engine = EngineOptions.Automatic(Environment.ProcessorCount, tuned) with
            {
                MaxJobs = parse.GetValue(maxQueue),
                Threads = parse.GetValue(threads) is > 0 and var n ? n : tuned?.ToOptions().Threads ?? 0,
                Optimization = Onnx.SessionSettings.ParseOptimization(parse.GetValue(optimize)!),
                OptimizedModelCache = Onnx.OptimizedModelCache.DefaultFolder,
            };
            var options = new ServerOptions
            {
                LoraDir = lorasFolder,
                Urls = parse.GetValue(urls)!,
                PublicUrl = parse.GetValue(publicUrl),
                AllowedHosts = parse.GetValue(allowedHosts) ?? [],
                InsecurePublic = parse.GetValue(insecurePublic),
                ApiKey = parse.GetValue(apiKey),
                ApiAuth = parse.GetValue(apiAuth),
                Engine = engine,
                Limits = new Pipelines.GenerationLimits { MaxWidth = parse.GetValue(maxSize), MaxHeight = parse.GetValue(maxSize), MaxSteps = parse.GetValue(maxSteps), MaxCount = parse.GetValue(maxImages) },
                SdapiOptionsFile = Server.Sdapi.SdapiOptions.DefaultFile,
            };
            options.Validate(); // before converting checkpoints, writing the built-in model or loading anything
            long? budgetBytes = parse.GetValue(budget) is { } budgetText ? Pipelines.MemoryBudget.Parse(budgetText) : null;

            var folders = new List<string>();
            var checkpoints = new Dictionary<string, ServedCheckpoint>();
            foreach (var model in modelArguments)
            {
                if (!Models.Checkpoints.CheckpointImport.IsCheckpoint(model)) { folders.Add(model); continue; }
                var import = new Models.Checkpoints.CheckpointImport { Source = model };
                var converted = CheckpointOptions.ResolveImport(import, cli, showProgress: true)!;
                folders.Add(converted.Folder);
                checkpoints[Path.GetFullPath(converted.Folder)] = new ServedCheckpoint(converted.Name, converted.Sha256, import);
            }
            if (modelsFolder is not null)
                folders.AddRange(Directory.GetDirectories(modelsFolder).Where(d => File.Exists(Path.Combine(d, "model_index.json"))).Order());
            options = options with
            {
                Models = folders,
                Checkpoints = checkpoints,
                BuiltInModel = folders.Count == 0 ? BuiltInModel.Ensure() : null,
                DefaultGuidanceScale = folders.Count == 0 ? Models.Synthetic.TinyShapesModel.GuidanceScale : null,
            };
            if (folders.Count == 0) cli.Error.WriteLine(BuiltInModel.Notice);
            if (budgetBytes is { } bytes)
            {
                var first = options.Models.Count > 0 ? options.Models[0] : options.BuiltInModel!;
                var plan = Pipelines.MemoryBudget.PlanBeforeLoading(first, null, null, bytes, engine.Streams * engine.MaxBatch);
                cli.Error.WriteLine(plan.Describe());
                options = options with { Engine = options.Engine with { Memory = plan.Policy } };
            }
            if (parse.GetValue(cluster) is { } connection)
            {
                string name = parse.GetValue(nodeName) ?? $"{System.Net.Dns.GetHostName()}-{new Uri(options.Urls.Split(';')[0]).Port}";
                return ClusterNode.Run(options, new ClusterSettings(connection, name, parse.GetValue(siloPort), parse.GetValue(gatewayPort)), cli.Error);
            }
            using var app = ServerApp.Build(options);
            try
            {
                app.Start();
            }
            catch (IOException e)
            {
                // A port in use or not ours to take: Kestrel's message names the address.
                throw new AsyncDiffusionException($"cannot listen on {options.Urls}: {e.Message.TrimEnd('.')}; stop what is using it or choose another --urls.");
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new AsyncDiffusionException($"cannot listen on {options.Urls}: {e.Message.TrimEnd('.')}; choose another --urls.");
            }
            app.WaitForShutdown();
            return 0;
        }));
        return command;
    }
}
