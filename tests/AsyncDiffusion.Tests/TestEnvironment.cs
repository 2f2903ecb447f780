using System.Runtime.CompilerServices;

namespace AsyncDiffusion.Tests;

internal static class TestEnvironment
{
    /// <summary>Commands run in-process write caches (built-in model, optimised graphs) under a scratch folder, not the user's cache.</summary>
    [ModuleInitializer]
    internal static void UseScratchCache()
    {
        if (Environment.GetEnvironmentVariable("ASYNCDIFFUSION_TESTS_KEEP_CACHE") is not null) return;
        string scratch = Path.Combine(Path.GetTempPath(), $"asyncdiffusion-tests-cache-{Environment.ProcessId}");
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", scratch);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(scratch, recursive: true); }
            catch (IOException) { }
        };
    }
}
