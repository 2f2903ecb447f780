using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// One CPU memory arena for every session of the process (ONNX Runtime's environment
/// allocator), registered once. With an arena per session, each keeps the high-water mark of
/// its own working memory for good: the UNet's activations and the VAE decoder's
/// full-resolution buffers add up although they are never needed at the same time. Shared,
/// the decoder reuses what the UNet freed. Measured on sd15 at 512×512, 20 steps: peak RSS
/// 5.32 → 4.88 GiB, same image, same time. Growth stays ONNX Runtime's default (next power of
/// two): growing by exactly what is asked peaked higher here (5.00 GiB).
/// </summary>
internal static class SharedCpuArena
{
    private static readonly Lazy<bool> Registered = new(Register, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The memory the arena serves: the CPU, as ONNX Runtime's sessions ask for it.</summary>
    public static OrtMemoryInfo Info() => new(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.ArenaAllocator, 0, OrtMemType.Default);

    public static void EnsureRegistered() => _ = Registered.Value;

    private static bool Register()
    {
        using var info = Info();
        using var arena = new OrtArenaCfg(0, -1, -1, -1); // no cap, ONNX Runtime's default growth and chunking
        try
        {
            OrtEnv.Instance().CreateAndRegisterAllocator(info, arena);
        }
        catch (OnnxRuntimeException)
        {
            // Already registered by the hosting process: sessions share that one.
        }
        return true;
    }
}
