using AsyncDiffusion.Models;
using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Tests.Models;

public class SharedCpuArenaTests
{
    private static float[] Predict(UNet unet)
    {
        var sample = Enumerable.Range(0, 4 * 8 * 8).Select(i => MathF.Sin(i)).ToArray();
        var context = Enumerable.Range(0, 77 * 32).Select(i => MathF.Cos(i) / 4).ToArray();
        return unet.Predict(sample, [1, 4, 8, 8], [500.0], context, [1, 77, 32]);
    }

    // Sessions draw on one process-wide CPU arena by default (registered with ONNX Runtime's environment the first
    // time a session is made), and compute exactly what a session with its own arena computes.
    [Fact]
    public void SessionsShareTheProcessArenaAndComputeWhatTheirOwnArenaComputes()
    {
        string unetFolder = Path.Combine(TinyModels.Folder("optimum"), "unet");
        Assert.True(SessionSettings.Default.SharedArena);

        float[] own, shared, again;
        using (var unet = UNet.Load(unetFolder, new SessionSettings { SharedArena = false })) own = Predict(unet);
        using (var unet = UNet.Load(unetFolder, SessionSettings.Default)) shared = Predict(unet);
        using (var unet = UNet.Load(unetFolder, SessionSettings.Default)) again = Predict(unet);

        using var info = SharedCpuArena.Info();
        Assert.NotNull(OrtEnv.Instance().GetSharedAllocator(info));
        Assert.Equal(own, shared);
        Assert.Equal(own, again); // a second session on the same arena, after the first freed its memory into it
    }
}
