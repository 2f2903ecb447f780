using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// One ONNX Runtime session and what its graph declares. Owns the native session; <c>Run</c> is
/// thread-safe, so one instance serves every request. Runs honour cancellation inside the
/// graph (ORT's RunOptions.Terminate) as well as between calls.
/// </summary>
public sealed class OnnxModel : IDisposable
{
    private readonly InferenceSession _session;

    public string Path { get; }
    public IReadOnlyDictionary<string, NodeMetadata> Inputs => _session.InputMetadata;
    public IReadOnlyDictionary<string, NodeMetadata> Outputs => _session.OutputMetadata;
    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>How the session was made and how long it took (null for models built in memory).</summary>
    public ModelLoad? Load { get; private init; }

    private OnnxModel(string path, InferenceSession session)
    {
        Path = path;
        _session = session;
        InputNames = session.InputNames.ToArray();
        OutputNames = session.OutputNames.ToArray();
    }

    public static OnnxModel Open(string path, SessionSettings settings)
    {
        if (!File.Exists(path)) throw new ModelFolderException($"'{path}' not found; expected an ONNX model file.");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            InferenceSession session;
            ModelLoadSource source;
            int fused;
            if (settings.OptimizedModelCache is { } cache && settings.Optimization != GraphOptimizationLevel.ORT_DISABLE_ALL)
                session = new OptimizedModelCache(cache).Open(path, settings, settings.ToOptions, out source, out fused);
            else
            {
                using var options = settings.ToOptions();
                session = LoadTimeRewrites.Open(path, options, settings, out var rewritten);
                fused = rewritten.Attentions;
                source = ModelLoadSource.Direct;
            }
            return new OnnxModel(path, session) { Load = new ModelLoad(NameOf(path), clock.Elapsed.TotalSeconds, source, fused) };
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFolderException($"'{path}' could not be loaded by ONNX Runtime: {FirstLine(e.Message)}. Expected a valid ONNX model (with its external data file beside it, if it has one).", e);
        }
    }

    /// <summary>A model built in memory (e.g. TAESD from its weights); <paramref name="name"/> stands in for the path in messages.</summary>
    public static OnnxModel FromBytes(byte[] model, string name, SessionSettings settings)
    {
        using var options = settings.ToOptions();
        try
        {
            return new OnnxModel(name, new InferenceSession(model, options));
        }
        catch (OnnxRuntimeException e)
        {
            throw new AsyncDiffusionException($"{name} could not be built by ONNX Runtime: {FirstLine(e.Message)}.", e);
        }
    }

    /// <summary>
    /// A second session for the model file at <paramref name="path"/>, with its graph changed by
    /// <paramref name="rewrite"/> (circular padding, extra outputs) and the load-time rewrites. Only the graph's structure is
    /// read into memory: weights kept in external data files are read by ONNX Runtime from the
    /// model's folder, as for the original; a self-contained model's weights are written to a
    /// scratch file for ONNX Runtime to read, so the process never holds the model twice over
    /// while the session is built. Messages name the original file.
    /// </summary>
    internal static OnnxModel LoadRewritten(string path, SessionSettings settings, Action<Graphs.Rewriting.OnnxGraph> rewrite)
    {
        var graph = Graphs.Rewriting.OnnxGraph.Load(path, externalData: false);
        rewrite(graph);
        LoadTimeRewrites.Apply(graph, settings); // variants run attention and GroupNorm as the main session does
        using var options = settings.ToOptions();
        string? scratch = null;
        try
        {
            if (graph.HasExternalData)
            {
                options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
                return new OnnxModel(path, new InferenceSession(graph.ToBytes(), options));
            }
            scratch = Directory.CreateTempSubdirectory("asyncdiffusion-rewritten-").FullName;
            string file = System.IO.Path.Combine(scratch, "model.onnx");
            graph.Save(file, "model.onnx.data"); // moves the weights out of the parsed graph as it writes them
            return new OnnxModel(path, new InferenceSession(file, options));
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFolderException($"'{path}' could not be loaded by ONNX Runtime after rewriting its graph: {FirstLine(e.Message)}.", e);
        }
        finally
        {
            if (scratch is not null)
                try { Directory.Delete(scratch, recursive: true); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // still mapped (Windows): the temp folder's owner cleans it up
        }
    }

    /// <summary>
    /// Sees the values of extra graph outputs on every run (calibration copies of a graph expose
    /// inner tensors this way); callers of <see cref="Run"/> still get only what they asked for.
    /// </summary>
    internal ITensorObserver? Observer { get; set; }

    /// <summary>Runs the graph; the caller disposes the returned outputs.</summary>
    public IDisposableReadOnlyCollection<OrtValue> Run(IReadOnlyList<string> inputNames, IReadOnlyList<OrtValue> inputs, IReadOnlyList<string> outputNames, CancellationToken cancellation = default)
    {
        cancellation.ThrowIfCancellationRequested();
        using var runOptions = new RunOptions();
        using var registration = cancellation.Register(() => runOptions.Terminate = true);
        try
        {
            if (Observer is not { } observer) return _session.Run(runOptions, inputNames, inputs, outputNames);
            string[] names = [.. outputNames, .. observer.Tensors.Where(t => !outputNames.Contains(t))];
            var all = _session.Run(runOptions, inputNames, inputs, names);
            try
            {
                foreach (var tensor in observer.Tensors) observer.Observe(tensor, all[Array.IndexOf(names, tensor)].GetTensorDataAsSpan<float>());
            }
            catch
            {
                all.Dispose();
                throw;
            }
            for (int i = outputNames.Count; i < all.Count; i++) all[i].Dispose();
            return new RequestedOutputs(all.Take(outputNames.Count).ToArray());
        }
        catch (OnnxRuntimeException) when (cancellation.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellation);
        }
        catch (OnnxRuntimeException e)
        {
            // The path stays in the log (inner exception); clients see which component failed.
            throw new GenerationFailedException($"ONNX Runtime failed running the {ComponentName} model.", e);
        }
    }

    /// <summary>The component folder's name (unet, vae_decoder, …) or the built model's name: no machine paths.</summary>
    public string ComponentName => NameOf(Path);

    private static string NameOf(string path) =>
        System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(path)) is { Length: > 0 } folder ? folder : System.IO.Path.GetFileName(path);

    /// <summary>Stops ONNX Runtime's operator profiling (when the settings enabled it) and returns the JSON file it wrote, else null.</summary>
    public string? EndProfiling()
    {
        try
        {
            string file = _session.EndProfiling();
            return string.IsNullOrEmpty(file) || !File.Exists(file) ? null : file;
        }
        catch (OnnxRuntimeException)
        {
            return null; // profiling was not enabled
        }
    }

    public void Dispose() => _session.Dispose();

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();

    private sealed class RequestedOutputs(OrtValue[] values) : IDisposableReadOnlyCollection<OrtValue>
    {
        public OrtValue this[int index] => values[index];
        public int Count => values.Length;
        public IEnumerator<OrtValue> GetEnumerator() => ((IEnumerable<OrtValue>)values).GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => values.GetEnumerator();

        public void Dispose()
        {
            foreach (var v in values) v.Dispose();
        }
    }
}

/// <summary>Where a session's graph came from.</summary>
public enum ModelLoadSource
{
    /// <summary>Read and optimised by ONNX Runtime, no cache.</summary>
    Direct,
    /// <summary>Optimised now and saved in the optimised-graph cache (a cold start).</summary>
    Optimised,
    /// <summary>Loaded from the optimised-graph cache without optimising again (a warm start).</summary>
    CacheHit,
}

/// <summary>One component's load: how long it took, where its graph came from and how many attentions run fused.</summary>
public sealed record ModelLoad(string Component, double Seconds, ModelLoadSource Source, int FusedAttentions);

/// <summary>Receives the values of named float tensors a model computes (see <see cref="OnnxModel.Observer"/>).</summary>
internal interface ITensorObserver
{
    IReadOnlyList<string> Tensors { get; }
    void Observe(string tensor, ReadOnlySpan<float> values);
}
