using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// ONNX Runtime's optimised graphs, saved per model file so that the next start skips graph
/// optimisation (13–25 s for SD 1.5's UNet at the "all" level). An entry is keyed by the model
/// file and its external data (path, size, modification time), the ONNX Runtime version, the
/// CPU's instruction sets (the optimised graph may use layouts chosen for them) and the session
/// settings that shape the graph; any change makes a new entry. Entries are written to a
/// temporary folder and moved into place complete, so a crash never leaves a half entry. A new
/// entry replaces the ones made earlier for the same model file, settings and CPU (the file
/// changed, ONNX Runtime was upgraded, or the saved form did): no load can hit those again, and
/// SD 1.5's take 5–6 GB each.
/// </summary>
public sealed class OptimizedModelCache(string folder)
{
    private const string ModelFile = "model.onnx", DataFile = "model.onnx.data", SourceFile = "source.txt";

    public string Folder { get; } = folder;

    /// <summary>The default location: the user's cache folder (XDG on Linux).</summary>
    public static string DefaultFolder => UserCache.Folder("optimized");

    /// <summary>
    /// A session for <paramref name="path"/>: from the cached optimised graph when there is one
    /// (loaded without optimising again), else optimised now and saved for next time.
    /// </summary>
    internal InferenceSession Open(string path, SessionSettings settings, Func<SessionOptions> createOptions, out ModelLoadSource source, out int fusedAttentions)
    {
        source = ModelLoadSource.CacheHit;
        fusedAttentions = 0;
        string entry = System.IO.Path.Combine(Folder, Key(path, settings));
        string cached = System.IO.Path.Combine(entry, ModelFile);
        if (File.Exists(cached))
        {
            using var warm = createOptions();
            warm.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
            try
            {
                var hit = new InferenceSession(cached, warm);
                fusedAttentions = CountFused(cached);
                return hit;
            }
            catch (OnnxRuntimeException)
            {
                TryDelete(entry); // unreadable (e.g. a disk error): rebuild it below
            }
        }

        string temporary = $"{entry}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        Directory.CreateDirectory(temporary);
        using var cold = createOptions();
        cold.OptimizedModelFilePath = System.IO.Path.Combine(temporary, ModelFile);
        // ORT warns that the saved graph is specific to this CPU; the entry's key holds the CPU features for that reason.
        cold.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        // Weights go beside the graph, as for models over 2 GB; small constants stay inline (with every initializer
        // external, ORT 1.31's entries no longer loaded at all). On the CPU the weights ORT re-lays out for its
        // kernels (pre-packed) are saved too, so a warm load maps them instead of packing them again: sd15's UNet
        // loaded 20 % faster and holds 1 GB less private memory (its packed copies are file pages, shared).
        cold.AddSessionConfigEntry("session.optimized_model_external_initializers_file_name", DataFile);
        cold.AddSessionConfigEntry("session.optimized_model_external_initializers_min_size_in_bytes", "1024");
        if (SavesPrepackedWeights(settings))
            cold.AddSessionConfigEntry("session.save_external_prepacked_constant_initializers", "1");
        InferenceSession session;
        source = ModelLoadSource.Optimised;
        try
        {
            session = LoadTimeRewrites.Open(path, cold, settings, out var rewritten);
            fusedAttentions = rewritten.Attentions;
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
        try
        {
            if (SavesPrepackedWeights(settings)) PrepackedWeightGuard.Apply(System.IO.Path.Combine(temporary, ModelFile));
        }
        catch (Exception e) when (e is IOException or Google.Protobuf.InvalidProtocolBufferException)
        {
            TryDelete(temporary); // not known to be safe to map: this start goes on uncached, the next one tries again
            return session;
        }
        string origin = Source(path, settings);
        try
        {
            File.WriteAllText(System.IO.Path.Combine(temporary, SourceFile), origin);
            Directory.Move(temporary, entry);
        }
        catch (IOException)
        {
            TryDelete(temporary); // another process saved the same entry first
            return session;
        }
        EvictSuperseded(entry, origin);
        return session;
    }

    internal static string Key(string path, SessionSettings settings)
    {
        var text = new StringBuilder();
        string full = System.IO.Path.GetFullPath(path);
        foreach (var file in new[] { full }.Concat(Directory.GetFiles(System.IO.Path.GetDirectoryName(full)!).Where(f => f != full).Order()))
        {
            var info = new FileInfo(file);
            text.Append(file).Append('|').Append(info.Length).Append('|').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        text.Append("ort ").Append(OrtEnv.Instance().GetVersionString()).Append('\n');
        text.Append("cpu ").Append(Avx2.IsSupported).Append(Fma.IsSupported).Append(Avx512F.IsSupported).Append(Avx512BW.IsSupported)
            .Append(Avx512Vbmi.IsSupported).Append(AvxVnni.IsSupported).Append(System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported).Append('\n');
        text.Append("settings ").Append(settings.Optimization).Append('|').Append(settings.ExecutionProvider.Trim().ToLowerInvariant()).Append('\n');
        text.Append("rewrites ").Append(LoadTimeRewrites.Key(settings)).Append('\n');
        if (SavesPrepackedWeights(settings)) text.Append("prepacked 1\n");
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24];
        string name = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(full)) is { Length: > 0 } component ? component : "model";
        return $"{name}-{hash}";
    }

    /// <summary>
    /// What an entry was made for, apart from the versions in its key: the model file, the
    /// settings that shape the graph and the CPU. Entries with the same source and another key
    /// are superseded. (The CPU is here so that machines sharing one cache folder keep their own.)
    /// </summary>
    internal static string Source(string path, SessionSettings settings) =>
        $"{System.IO.Path.GetFullPath(path)}\n{settings.Optimization}|{settings.ExecutionProvider.Trim().ToLowerInvariant()}|{(settings.FuseAttention ? "fused attention" : "attention as exported")}\n" +
        $"{Avx2.IsSupported}{Fma.IsSupported}{Avx512F.IsSupported}{Avx512BW.IsSupported}{Avx512Vbmi.IsSupported}{AvxVnni.IsSupported}{System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported}\n";

    /// <summary>
    /// Deletes the entries made for <paramref name="source"/> under other keys. Entries of older
    /// versions without a source file are left alone (their model is not known). On Linux a
    /// process still mapping a deleted entry keeps its pages; elsewhere the delete fails and is skipped.
    /// </summary>
    private void EvictSuperseded(string entry, string source)
    {
        foreach (var other in Directory.GetDirectories(Folder))
        {
            if (other == entry || other.Contains(".tmp-", StringComparison.Ordinal)) continue;
            string file = System.IO.Path.Combine(other, SourceFile);
            try
            {
                if (File.Exists(file) && File.ReadAllText(file) == source) TryDelete(other);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    // Pre-packing is the CPU provider's; other providers keep their weights their own way.
    private static bool SavesPrepackedWeights(SessionSettings settings) => settings.ExecutionProvider.Trim().Equals("cpu", StringComparison.OrdinalIgnoreCase);

    // The saved graph is small (its weights are beside it): counting its fused nodes costs milliseconds.
    private static int CountFused(string cached) =>
        Graphs.OnnxStructureReader.Read(cached).Graph.Node.Count(n => n.OpType == Graphs.Rewriting.AttentionFusion.Operator);

    private static void TryDelete(string directory)
    {
        try { Directory.Delete(directory, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
