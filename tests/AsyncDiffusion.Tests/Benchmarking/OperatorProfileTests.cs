using AsyncDiffusion.Benchmarking;

namespace AsyncDiffusion.Tests.Benchmarking;

public class OperatorProfileTests
{
    [Fact]
    public void ConvAndMatMulFlopsComeFromTheRecordedShapes()
    {
        // 3×3 conv 320 → 320 at 32×32, batch 2: 2 · (2·320·32·32) · (320·3·3)
        double conv = OperatorProfile.Flops("Conv", [[2, 320, 32, 32], [320, 320, 3, 3], [320]], [[2, 320, 32, 32]]);
        Assert.Equal(2.0 * 2 * 320 * 32 * 32 * 320 * 9, conv);
        // [2, 4096, 320] · [320, 1280]
        double matmul = OperatorProfile.Flops("MatMul", [[2, 4096, 320], [320, 1280]], [[2, 4096, 1280]]);
        Assert.Equal(2.0 * 2 * 4096 * 1280 * 320, matmul);
        Assert.Equal(0, OperatorProfile.Flops("Softmax", [[2, 8, 77, 77]], [[2, 8, 77, 77]]));
    }
}
