using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Tests.Models;

public class SharedCpuArenaTests
{
    // Sessions draw on one process-wide CPU arena by default (registered with ONNX Runtime's environment the first
    // time a session is made), and compute exactly what a session with its own arena computes.
    [Fact]
    public void SessionsShareTheProcessArenaAndComputeWhatTheirOwnArenaComputes()
    {
        string unetFolder = Path.Combine(TinyModels.Folder("optimum"), "unet");
        Assert.True(SessionSettings.Default.SharedArena);

        float[] own, shared, again;
        using (var unet = UNet.Load(unetFolder, new SessionSettings { SharedArena = false })) own = OptimizedModelCacheTests.Predict(unet);
        using (var unet = UNet.Load(unetFolder, SessionSettings.Default)) shared = OptimizedModelCacheTests.Predict(unet);
        using (var unet = UNet.Load(unetFolder, SessionSettings.Default)) again = OptimizedModelCacheTests.Predict(unet);

        using var info = SharedCpuArena.Info();
        Assert.NotNull(OrtEnv.Instance().GetSharedAllocator(info));
        Assert.Equal(own, shared);
        Assert.Equal(own, again); // a second session on the same arena, after the first freed its memory into it
    }
}
