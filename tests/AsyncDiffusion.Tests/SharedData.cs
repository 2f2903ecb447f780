using System.Text.Json;

namespace AsyncDiffusion.Tests;

/// <summary>
/// Finds the reference data in ../shared (beside the repository root) and any extra vector sets
/// in the folder named by ASYNCDIFFUSION_EXTRA_CASES.
/// </summary>
public static class SharedData
{
    public const string ExtraCasesVariable = "ASYNCDIFFUSION_EXTRA_CASES";

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string Root
    {
        get
        {
            string path = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));
            if (!Directory.Exists(path))
                throw new DirectoryNotFoundException($"Reference data folder '{path}' not found; the tests expect ../shared beside the repository.");
            return path;
        }
    }

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>Every <c>{prefix}*.json</c> of the shared folder (in name order, so <c>{prefix}.json</c> comes first) plus those in the extra-cases folder.</summary>
    public static IReadOnlyList<string> CaseFiles(string sharedFolder, string prefix)
    {
        string folder = PathOf("data", sharedFolder);
        var files = Directory.GetFiles(folder, prefix + "*.json").OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new FileNotFoundException($"No {prefix}*.json in '{folder}'.");
        string? extra = Environment.GetEnvironmentVariable(ExtraCasesVariable);
        if (!string.IsNullOrWhiteSpace(extra))
        {
            if (!Directory.Exists(extra))
                throw new DirectoryNotFoundException($"{ExtraCasesVariable} names '{extra}', which is not a folder.");
            files.AddRange(Directory.GetFiles(extra, prefix + "*.json").OrderBy(f => f, StringComparer.Ordinal));
        }
        return files;
    }

    private static readonly Dictionary<string, JsonDocument> Cache = new();

    public static JsonElement Load(string file)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(file, out var doc))
            {
                doc = JsonDocument.Parse(File.ReadAllBytes(file));
                Cache[file] = doc;
            }
            return doc.RootElement;
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "AsyncDiffusion.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("Could not find the repository root (AsyncDiffusion.slnx) above the test assembly.");
    }
}
