namespace AsyncDiffusion;

/// <summary>
/// Where AsyncDiffusion keeps what it can rebuild (the built-in model, optimised graphs, converted
/// checkpoints): <c>$XDG_CACHE_HOME/asyncdiffusion</c>, else <c>~/.cache/asyncdiffusion</c>
/// (LocalApplicationData on Windows).
/// </summary>
public static class UserCache
{
    public static string Folder(string name)
    {
        string? cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrWhiteSpace(cache))
            cache = OperatingSystem.IsWindows()
                ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "asyncdiffusion", name);
    }
}
