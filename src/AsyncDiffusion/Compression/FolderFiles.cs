namespace AsyncDiffusion.Compression;

/// <summary>Copying and linking the parts of a model folder a quantization run does not rewrite.</summary>
internal static class FolderFiles
{
    public static void CopyDirectory(string source, string destination, Func<string, bool>? skip = null)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source))
            if (skip?.Invoke(file) != true) File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        foreach (var dir in Directory.EnumerateDirectories(source))
            CopyDirectory(dir, Path.Combine(destination, Path.GetFileName(dir)), skip);
    }

    /// <summary>A read-only view of <paramref name="source"/> at <paramref name="link"/>: a symbolic link where the system allows one, else a copy.</summary>
    public static void LinkDirectory(string source, string link)
    {
        try
        {
            Directory.CreateSymbolicLink(link, source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            CopyDirectory(source, link);
        }
    }

    public static long Size(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    public static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover staging folder is named as such and never mistaken for the model.
        }
    }
}
