using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using AsyncDiffusion.Pipelines;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Compression;

/// <summary>
/// Makes an int8 copy of a diffusers-ONNX model folder that any loader reads as a normal model:
/// checks the source (a float SD folder, not quantized already) and the destination; writes
/// calibration copies of the graphs that need activation ranges and runs the model's own
/// denoising trajectories through them; rewrites each component (<see cref="Int8Quantizer"/>)
/// with its record beside it; copies everything else; marks model_index.json; measures the
/// quality report. The folder is written beside the destination and moved into place only
/// when complete, so a failure leaves nothing half-written.
/// </summary>
public static class ModelQuantizer
{
    /// <summary>The key in model_index.json that says a folder is quantized, and how.</summary>
    public const string MarkerKey = ModelFolder.QuantizationMarkerKey;

    private const string CalibrationFolderName = ".calibration";

    // Operators that only a quantized graph contains.
    private static readonly HashSet<string> QuantizedOps =
        ["QLinearConv", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulInteger", "ConvInteger", "QuantizeLinear", "MatMulNBits", "DynamicQuantizeLinear"];

    public static QuantizeResult Quantize(string source, string destination, QuantizeOptions options,
        IProgress<QuantizeProgress>? progress = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        source = Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar);
        destination = Path.GetFullPath(destination).TrimEnd(Path.DirectorySeparatorChar);
        CheckOptions(options);
        CheckDestination(source, destination);
        RejectQuantized(source);
        var (components, width, height) = CheckSource(source, options);

        string staging = destination + $".partial-{Environment.ProcessId}";
        FolderFiles.TryDelete(staging);
        try
        {
            Directory.CreateDirectory(staging);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AsyncDiffusionException($"Cannot write the output folder '{destination}' ({e.Message}); choose a folder you can write to.");
        }

        try
        {
            var calibration = Calibrate(source, staging, components, options with { Width = width, Height = height }, progress, cancellation);
            var records = new Dictionary<string, QuantizationRecord>();
            foreach (var component in components)
            {
                cancellation.ThrowIfCancellationRequested();
                progress?.Report(new QuantizeProgress($"rewriting {component}", records.Count, components.Count));
                records[component] = Rewrite(source, staging, component, options, calibration.GetValueOrDefault(component), width, height);
                ReleaseGraphs();
            }
            progress?.Report(new QuantizeProgress("rewriting", components.Count, components.Count));
            CopyRest(source, staging, components);
            WriteModelIndex(source, staging, records, options, width, height);

            QualityReport? quality = null;
            if (options.MeasureQuality)
                quality = QualityMeasurement.Run(source, staging, records, options with { Width = width, Height = height }, progress, cancellation);

            Directory.Move(staging, destination);
            return new QuantizeResult(destination, records, quality, FolderFiles.Size(source), FolderFiles.Size(destination), clock.Elapsed);
        }
        catch
        {
            FolderFiles.TryDelete(staging);
            throw;
        }
    }

    private static void CheckOptions(QuantizeOptions options)
    {
        if (options.CalibrationPrompts.Count == 0 || options.CalibrationPrompts.All(string.IsNullOrWhiteSpace))
            throw new AsyncDiffusionException("No calibration prompts; expected at least one prompt (one per line in the prompts file).");
        if (options.CalibrationSteps < 1 || options.CalibrationSteps > 150)
            throw new AsyncDiffusionException($"Calibration steps is {options.CalibrationSteps}; expected 1 to 150.");
        if (options.Components is { } list)
        {
            if (list.Count == 0) throw new AsyncDiffusionException($"No components to quantize; expected some of {string.Join(", ", QuantizeOptions.AllComponents)}.");
            foreach (var c in list)
                if (!QuantizeOptions.AllComponents.Contains(c))
                    throw new AsyncDiffusionException($"Unknown component '{c}'; expected some of {string.Join(", ", QuantizeOptions.AllComponents)}.");
        }
    }

    private static void CheckDestination(string source, string destination)
    {
        if (File.Exists(destination) || (Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any()))
            throw new AsyncDiffusionException($"'{destination}' already exists and is not empty; choose a new folder for the quantized model.");
        if (destination == source || destination.StartsWith(source + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new AsyncDiffusionException($"'{destination}' is inside the source model folder; choose a folder outside '{source}'.");
        string? parent = Path.GetDirectoryName(destination);
        if (parent is null || !Directory.Exists(parent))
            throw new AsyncDiffusionException($"Cannot write the output folder '{destination}': its parent folder does not exist.");
    }

    /// <summary>Refuses folders that are quantized already: by the marker, or by int8 operators in any component.</summary>
    private static void RejectQuantized(string source)
    {
        string index = Path.Combine(source, "model_index.json");
        if (File.Exists(index))
        {
            try
            {
                if (JsonNode.Parse(File.ReadAllText(index)) is JsonObject o && o.ContainsKey(MarkerKey))
                    throw new AsyncDiffusionException($"'{source}' is already quantized (model_index.json has {MarkerKey}); quantize the original float model instead.");
            }
            catch (JsonException)
            {
                // ModelFolder.Open reports the broken file with its own message.
            }
        }
        foreach (var component in QuantizeOptions.AllComponents)
        {
            string file = Path.Combine(source, component, "model.onnx");
            if (!File.Exists(file)) continue;
            var ops = OnnxGraphInfo.OperatorTypes(file);
            if (ops.FirstOrDefault(QuantizedOps.Contains) is { } op)
                throw new AsyncDiffusionException($"'{file}' already contains {op}: the model is quantized; quantize the original float model instead.");
        }
    }

    /// <summary>Opens the source as a model (the same checks as every loader), and settles components and size.</summary>
    private static (IReadOnlyList<string> Components, int Width, int Height) CheckSource(string source, QuantizeOptions options)
    {
        using var model = ModelFolder.Open(source, options.Session with { Optimization = GraphOptimizationLevel.ORT_DISABLE_ALL });
        if (model.UNet.SampleType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)
            throw new AsyncDiffusionException($"'{model.UNet.Path}' is a {model.UNet.SampleType} export; quantize the float32 export (fp16 gains nothing on CPUs).");
        var present = QuantizeOptions.AllComponents.Where(c => File.Exists(Path.Combine(source, c, "model.onnx"))).ToList();
        var components = options.Components ?? present;
        foreach (var c in components)
            if (!present.Contains(c))
                throw new AsyncDiffusionException($"'{source}' has no {c}/model.onnx to quantize; it has {string.Join(", ", present)}.");
        // Planning one calibration request validates the size against the model.
        var plan = GenerationPlan.Create(new GenerationRequest { Prompt = options.CalibrationPrompts[0], Steps = options.CalibrationSteps, Width = options.Width, Height = options.Height }, model);
        return (QuantizeOptions.AllComponents.Where(components.Contains).ToArray(), plan.Width, plan.Height);
    }

    /// <summary>
    /// Builds a calibration folder (calibration copies of the graphs with convolutions, links to
    /// the rest), runs the prompts through it and returns each component's statistics.
    /// </summary>
    private static Dictionary<string, CalibrationCollector> Calibrate(string source, string staging, IReadOnlyList<string> components, QuantizeOptions options,
        IProgress<QuantizeProgress>? progress, CancellationToken cancellation)
    {
        string folder = Path.Combine(staging, CalibrationFolderName);
        Directory.CreateDirectory(folder);
        var collectors = new Dictionary<string, CalibrationCollector>();
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(source))
            {
                string name = Path.GetFileName(entry);
                string target = Path.Combine(folder, name);
                if (File.Exists(entry)) File.Copy(entry, target);
                else if (name == "scheduler") SpreadTimesteps(entry, target);
                else if (!components.Contains(name)) FolderFiles.LinkDirectory(entry, target);
                else
                {
                    progress?.Report(new QuantizeProgress($"calibration copy of {name}", 0, 1));
                    var graph = OnnxGraph.Load(Path.Combine(entry, "model.onnx"));
                    var plan = LayerSelection.Plan(graph, options.Exclude);
                    if (plan.CalibrationTensors.Count == 0)
                    {
                        FolderFiles.LinkDirectory(entry, target);
                        continue;
                    }
                    FolderFiles.CopyDirectory(entry, target, skip: f => !f.EndsWith(".json", StringComparison.OrdinalIgnoreCase));
                    Int8Quantizer.SaveCalibrationModel(graph, plan, Path.Combine(target, "model.onnx"));
                    collectors[name] = new CalibrationCollector(plan.CalibrationTensors);
                }
            }
            ReleaseGraphs();
            if (collectors.Count > 0) Calibration.Run(folder, collectors, options, progress, cancellation);
            return collectors;
        }
        finally
        {
            FolderFiles.TryDelete(folder);
        }
    }

    /// <summary>
    /// The model's scheduler with "linspace" spacing, so calibration trajectories start at the
    /// last training timestep (999) and end at 0: SD 1.x's "leading" spacing never goes above
    /// ≈ 950, yet users pick schedules that do.
    /// </summary>
    private static void SpreadTimesteps(string source, string target)
    {
        FolderFiles.CopyDirectory(source, target);
        string config = Path.Combine(target, "scheduler_config.json");
        if (File.Exists(config) && JsonNode.Parse(File.ReadAllText(config)) is JsonObject o)
        {
            o["timestep_spacing"] = "linspace";
            File.WriteAllText(config, o.ToJsonString());
        }
    }

    private static QuantizationRecord Rewrite(string source, string staging, string component, QuantizeOptions options, CalibrationCollector? calibration,
        int width, int height)
    {
        string from = Path.Combine(source, component), to = Path.Combine(staging, component);
        string model = Path.Combine(from, "model.onnx");
        var external = OnnxGraphInfo.ExternalDataFiles(model);
        var graph = OnnxGraph.Load(model);
        var plan = LayerSelection.Plan(graph, options.Exclude);
        string calibrationSource = $"{calibration?.Runs ?? 0} calls: {options.CalibrationPrompts.Count} prompts × {options.CalibrationSteps} steps at {width}x{height}, CFG {options.GuidanceScale}";
        var record = Int8Quantizer.Apply(graph, component, plan, calibration, options.Clipping, calibration is null ? null : calibrationSource);

        // Everything beside the model (config.json …) comes along; the old weights do not.
        FolderFiles.CopyDirectory(from, to, skip: f => Path.GetFileName(f) is var n && (n == "model.onnx" || external.Contains(n) || n == QuantizationRecord.FileName));
        // Keep the source's external-data layout (optimum's model.onnx_data, the converter's weights.pb); small models stay in one file.
        string? dataName = external.Count switch { 0 => null, 1 => external[0], _ => "model.onnx_data" };
        graph.Save(Path.Combine(to, "model.onnx"), dataName);
        record.Save(to);
        return record;
    }

    // A UNet graph holds gigabytes of managed arrays: hand them back before ONNX Runtime loads the next model.
    private static void ReleaseGraphs() => GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private static void CopyRest(string source, string staging, IReadOnlyList<string> components)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(source))
        {
            string name = Path.GetFileName(entry);
            if (components.Contains(name) || name == "model_index.json") continue;
            if (File.Exists(entry)) File.Copy(entry, Path.Combine(staging, name));
            else FolderFiles.CopyDirectory(entry, Path.Combine(staging, name));
        }
    }

    private static void WriteModelIndex(string source, string staging, IReadOnlyDictionary<string, QuantizationRecord> records, QuantizeOptions options, int width, int height)
    {
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "model_index.json"))) as JsonObject
            ?? throw new ModelFolderException($"'{source}/model_index.json' is not a JSON object.");
        var parts = new JsonObject();
        foreach (var (component, record) in records) parts[component] = record.Summary();
        index[MarkerKey] = new JsonObject
        {
            ["scheme"] = "int8",
            ["description"] = QuantizationRecord.Int8Scheme,
            ["components"] = parts,
            ["source"] = Path.GetFileName(source),
            ["calibration"] = new JsonObject
            {
                ["prompts"] = options.CalibrationPrompts.Count,
                ["steps"] = options.CalibrationSteps,
                ["size"] = $"{width}x{height}",
                ["clipping"] = options.Clipping.ToString(),
            },
            ["exclude"] = new JsonArray(options.Exclude.Select(e => (JsonNode)e).ToArray()),
            ["note"] = $"Written by AsyncDiffusion 'models quantize'. Scales and kept-float layers: {QuantizationRecord.FileName} beside each model.onnx.",
        };
        File.WriteAllText(Path.Combine(staging, "model_index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
