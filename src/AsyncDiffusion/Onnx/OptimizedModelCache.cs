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
/// temporary folder and moved into place complete, so a crash never leaves a half entry. Entries
/// that no load can hit any more are deleted (see <see cref="EvictSuperseded"/>): SD 1.5's take
/// 5–6 GB each.
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
        // The model files' stamps are read once a load: they key the entry and go into its record.
        string stamps = FileStamps(System.IO.Path.GetFullPath(path));
        string entry = System.IO.Path.Combine(Folder, Key(path, stamps, settings));
        string cached = System.IO.Path.Combine(entry, ModelFile);
        string origin = Source(path, settings), record = Record(origin, stamps);
        if (File.Exists(cached))
        {
            using var warm = createOptions();
            warm.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
            try
            {
                var hit = new InferenceSession(cached, warm);
                fusedAttentions = CountFused(cached);
                RecordUse(entry, origin, record);
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
        try
        {
            File.WriteAllText(System.IO.Path.Combine(temporary, SourceFile), record);
            Directory.Move(temporary, entry);
        }
        catch (IOException)
        {
            TryDelete(temporary); // another process saved the same entry first
            return session;
        }
        EvictSuperseded(entry, origin, record);
        return session;
    }

    internal static string Key(string path, SessionSettings settings) => Key(path, FileStamps(System.IO.Path.GetFullPath(path)), settings);

    private static string Key(string path, string stamps, SessionSettings settings)
    {
        var text = new StringBuilder();
        string full = System.IO.Path.GetFullPath(path);
        text.Append(stamps);
        text.Append("ort ").Append(OrtEnv.Instance().GetVersionString()).Append('\n');
        text.Append("cpu ").Append(CpuFeatures).Append('\n');
        text.Append("settings ").Append(settings.Optimization).Append('|').Append(settings.ExecutionProvider.Trim().ToLowerInvariant()).Append('\n');
        text.Append("rewrites ").Append(LoadTimeRewrites.Key(settings)).Append('\n');
        if (SavesPrepackedWeights(settings)) text.Append("prepacked 1\n");
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24];
        string name = System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(full)) is { Length: > 0 } component ? component : "model";
        return $"{name}-{hash}";
    }

    /// <summary>The model file and every file beside it (its external data): path, size and modification time, a line each.</summary>
    private static string FileStamps(string full)
    {
        var text = new StringBuilder();
        foreach (var file in new[] { full }.Concat(Directory.GetFiles(System.IO.Path.GetDirectoryName(full)!).Where(f => f != full).Order()))
        {
            var info = new FileInfo(file);
            text.Append(file).Append('|').Append(info.Length).Append('|').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        return text.ToString();
    }

    private static string CpuFeatures =>
        $"{Avx2.IsSupported}{Fma.IsSupported}{Avx512F.IsSupported}{Avx512BW.IsSupported}{Avx512Vbmi.IsSupported}{AvxVnni.IsSupported}{System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported}";

    /// <summary>
    /// What an entry was made for, apart from the file stamps and versions in its key: the model
    /// file, the settings that shape the graph (every setting <see cref="LoadTimeRewrites.Key"/>
    /// reads) and the CPU — machines sharing one cache folder keep their own entries.
    /// </summary>
    internal static string Source(string path, SessionSettings settings) =>
        $"model {System.IO.Path.GetFullPath(path)}\nsettings {settings.Optimization}|{settings.ExecutionProvider.Trim().ToLowerInvariant()}|{(settings.FuseAttention ? "fused attention" : "attention as exported")}\ncpu {CpuFeatures}\n";

    /// <summary>The entry's record: its source, then a hash of the model's file stamps.</summary>
    internal static string Record(string path, SessionSettings settings) => Record(Source(path, settings), FileStamps(System.IO.Path.GetFullPath(path)));

    private static string Record(string source, string stamps) =>
        source + "files " + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(stamps)))[..24] + "\n";

    /// <summary>An entry of the same source under another key, unused this long, is taken for an older version's.</summary>
    internal static readonly TimeSpan UnusedAfter = TimeSpan.FromDays(2);

    /// <summary>
    /// A hit refreshes the entry's record (written now if an earlier version made the entry
    /// without one), whose modification time says when the entry was last used.
    /// </summary>
    private void RecordUse(string entry, string source, string record)
    {
        string file = System.IO.Path.Combine(entry, SourceFile);
        try
        {
            if (File.Exists(file) && File.ReadAllText(file) == record)
            {
                File.SetLastWriteTimeUtc(file, DateTime.UtcNow);
            }
            else
            {
                // Written aside and moved over, so another process never reads half a record.
                string aside = $"{file}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
                File.WriteAllText(aside, record);
                File.Move(aside, file, overwrite: true);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        EvictSuperseded(entry, source, record);
    }

    /// <summary>
    /// Deletes the entries made for <paramref name="source"/> under other keys than <paramref name="entry"/>'s:
    /// at once when the model's files have changed since (no load can hit them again), and after
    /// <see cref="UnusedAfter"/> without use when only versions differ (ONNX Runtime, this
    /// program's rewrites), so two versions in use side by side keep their entries. An entry is
    /// renamed aside before it is deleted, so a failed delete never leaves half an entry under
    /// its key; on Linux a process still mapping it keeps its pages. Entries without a record
    /// (made by earlier versions and not used since) are left alone.
    /// </summary>
    private void EvictSuperseded(string entry, string source, string record)
    {
        try
        {
            string name = System.IO.Path.GetFileName(entry);
            foreach (var other in Directory.GetDirectories(Folder))
            {
                string otherName = System.IO.Path.GetFileName(other);
                if (otherName.Contains(".trash-", StringComparison.Ordinal))
                {
                    TryDelete(other); // an earlier eviction's leftover
                    continue;
                }
                if (otherName == name || otherName.Contains(".tmp-", StringComparison.Ordinal)) continue;
                var file = new FileInfo(System.IO.Path.Combine(other, SourceFile));
                if (!file.Exists) continue;
                string text = File.ReadAllText(file.FullName);
                if (!text.StartsWith(source, StringComparison.Ordinal)) continue;
                bool filesChanged = text != record;
                if (filesChanged || DateTime.UtcNow - file.LastWriteTimeUtc > UnusedAfter) Discard(other);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void Discard(string directory)
    {
        string aside = $"{directory}.trash-{Guid.NewGuid():N}";
        try
        {
            Directory.Move(directory, aside);
        }
        catch (IOException) { return; } // in use where that forbids it, or gone already
        catch (UnauthorizedAccessException) { return; }
        TryDelete(aside);
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
