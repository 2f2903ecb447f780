using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// How ONNX Runtime sessions are created: execution provider, threads and spinning. Execution
/// providers are named, not linked: "cpu" always works; "cuda", "dml", "openvino" and others
/// work where the matching ONNX Runtime package is installed instead of the CPU one.
/// </summary>
public sealed record SessionSettings
{
    /// <summary>Threads for one operator (0: ONNX Runtime's default, one per core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Whether idle ORT threads spin. Off where several stages or streams share the cores.</summary>
    public bool AllowSpinning { get; init; } = true;

    public string ExecutionProvider { get; init; } = "cpu";

    public GraphOptimizationLevel Optimization { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// Folder where optimised graphs are kept between runs (see <see cref="Onnx.OptimizedModelCache"/>);
    /// null: optimise at every load. The command-line tool uses <see cref="Onnx.OptimizedModelCache.DefaultFolder"/>.
    /// </summary>
    public string? OptimizedModelCache { get; init; }

    /// <summary>
    /// Rewrite attention into ONNX Runtime's fused MultiHeadAttention when a float32 model is
    /// loaded (see <see cref="Graphs.Rewriting.AttentionFusion"/>). Off: attention runs as exported
    /// (for comparisons); the other load-time rewrites, which keep the maths as it is, still apply
    /// (see <see cref="LoadTimeRewrites"/>).
    /// </summary>
    public bool FuseAttention { get; init; } = true;

    /// <summary>What the pipelines trade for peak memory (guidance calls, decode tiles); see <see cref="MemoryPolicy"/>.</summary>
    public MemoryPolicy Memory { get; init; } = MemoryPolicy.Default;

    /// <summary>
    /// Sessions take their working memory from one CPU arena shared by the process (see
    /// <see cref="SharedCpuArena"/>) instead of an arena each. Off only for comparisons.
    /// </summary>
    public bool SharedArena { get; init; } = true;

    /// <summary>When set, ONNX Runtime records every operator it runs into JSON files starting with this path (see <see cref="OnnxModel.EndProfiling"/>).</summary>
    public string? ProfilePrefix { get; init; }

    public static SessionSettings Default { get; } = new();

    /// <summary>
    /// "basic" or "all" (ONNX Runtime's graph optimisation level). Measured on sd15's UNet here:
    /// basic loads in 3 s instead of 13 s, all runs each step 5–9 % faster.
    /// </summary>
    public static GraphOptimizationLevel ParseOptimization(string name) => name.Trim().ToLowerInvariant() switch
    {
        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
        _ => throw new AsyncDiffusionException($"Graph optimisation '{name}' is not known; expected basic (fast load), extended or all (fastest steps)."),
    };

    // ONNX Runtime's own log goes straight to stderr (a broken model prints its lines before our one-line error); its errors reach us as exceptions anyway.
    private static readonly bool QuietEnvironment = SilenceEnvironmentLog();

    private static bool SilenceEnvironmentLog()
    {
        OrtEnv.Instance().EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
        return true;
    }

    internal SessionOptions ToOptions()
    {
        _ = QuietEnvironment;
        var o = new SessionOptions
        {
            GraphOptimizationLevel = Optimization,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
        try
        {
            if (IntraOpThreads > 0) o.IntraOpNumThreads = IntraOpThreads;
            if (ProfilePrefix is not null)
            {
                o.ProfileOutputPathPrefix = ProfilePrefix; // before enabling: the setter hands the prefix to ONNX Runtime
                o.EnableProfiling = true;
            }
            o.AddSessionConfigEntry("session.intra_op.allow_spinning", AllowSpinning ? "1" : "0");
            if (SharedArena)
            {
                SharedCpuArena.EnsureRegistered();
                o.AddSessionConfigEntry("session.use_env_allocators", "1");
            }
            switch (ExecutionProvider.Trim().ToLowerInvariant())
            {
                case "cpu": break;
                case "cuda": o.AppendExecutionProvider_CUDA(); break;
                case "dml" or "directml": o.AppendExecutionProvider_DML(); break;
                case "openvino": o.AppendExecutionProvider_OpenVINO(); break;
                case "coreml": o.AppendExecutionProvider_CoreML(); break;
                default: o.AppendExecutionProvider(ExecutionProvider, new Dictionary<string, string>()); break;
            }
            return o;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException or NotSupportedException)
        {
            o.Dispose();
            throw new AsyncDiffusionException(
                $"Execution provider '{ExecutionProvider}' is not available in this ONNX Runtime build ({e.Message}); use 'cpu', or install the ONNX Runtime package that includes it.");
        }
    }
}
