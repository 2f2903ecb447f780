using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Tests.Models;

/// <summary>Tiny synthetic model folders, written once per test run and shared (read-only) by the tests.</summary>
public static class TinyModels
{
    private static readonly string Root = CreateRoot();
    private static readonly Dictionary<string, string> Written = new();

    // Deleted when the test process ends: each run wrote ≈ 60 MB here and left it behind.
    private static string CreateRoot()
    {
        string root = Directory.CreateTempSubdirectory("asyncdiffusion-models-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        };
        return root;
    }

    public static string Folder(string vintage = "optimum-1.24", bool half = false, ulong seed = 0, string preset = "tiny")
    {
        string key = $"{(preset == "tiny" ? "" : preset + "-")}{vintage}-{(half ? "fp16" : "fp32")}-{seed}";
        lock (Written)
        {
            if (!Written.TryGetValue(key, out var path))
            {
                path = Path.Combine(Root, key);
                SyntheticModelWriter.Write(path, SyntheticPreset.Parse(preset), ContractVintage.Parse(vintage), half, seed);
                Written[key] = path;
            }
            return path;
        }
    }
}
