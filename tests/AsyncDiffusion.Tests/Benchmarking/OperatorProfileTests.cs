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
        // A MatMul whose constant weights ONNX Runtime pre-packed records only its activation.
        Assert.Equal(matmul, OperatorProfile.Flops("MatMul", [[2, 4096, 320]], [[2, 4096, 1280]]));
        Assert.Equal(matmul, OperatorProfile.Flops("FusedMatMul", [[2, 4096, 320]], [[2, 4096, 1280]]));
    }

    [Fact]
    public void AttentionTimeCountsProductsOfTwoActivationsSoftmaxAndFusedKernelsButNotLinearLayers()
    {
        using var dir = new TempFolder();
        static string Event(string op, double us, string inputs) =>
            $$$"""{"cat": "Node", "name": "{{{op}}}_node_kernel_time", "dur": {{{us}}}, "args": {"op_name": "{{{op}}}", "input_type_shape": [{{{inputs}}}], "output_type_shape": []}}""";
        string trace = "[" + string.Join(",",
            Event("MatMul", 1000, """{"float": [2, 4096, 320]}, {"float": [320, 320]}"""),           // a linear layer: not attention
            Event("MatMul", 300, """{"float": [2, 8, 4096, 40]}, {"float": [2, 8, 40, 4096]}"""),     // Q·Kᵀ
            Event("Softmax", 200, """{"float": [2, 8, 4096, 4096]}"""),
            Event("MatMul", 250, """{"float": [16, 4096, 4096]}, {"float": [16, 4096, 40]}"""),       // P·V, batched heads
            Event("MultiHeadAttention", 250, """{"float": [2, 4096, 320]}, {"float": [2, 77, 320]}, {"float": [2, 77, 320]}""")) + "]";
        string file = dir.File("unet-profile.json", trace);

        var (operators, attention) = OperatorProfile.Read([("unet", file)]);
        var unet = Assert.Single(attention);
        Assert.Equal(4, unet.Calls);
        Assert.Equal(1.0, unet.Milliseconds, 6);
        Assert.Equal(1000.0 / 2000, unet.Share, 6);
        Assert.Equal(1.55, operators.Single(o => o.OpType == "MatMul").Milliseconds, 6); // all three MatMuls, linear or not
    }

    // ONNX Runtime records, with each parallel kernel, how long the calling thread waited for the pool's other
    // threads after finishing its own share: the cost of a static split when one core runs slower.
    [Fact]
    public void TheCallingThreadsWaitIsSummedPerOperatorAndComponent()
    {
        using var dir = new TempFolder();
        static string Event(string op, double us, string stats) =>
            $$$"""{"cat": "Node", "name": "{{{op}}}_kernel_time", "dur": {{{us}}}, "args": {"op_name": "{{{op}}}", "input_type_shape": [{"float": [2, 320, 32, 32]}, {"float": [320, 320, 3, 3]}], "output_type_shape": [{"float": [2, 320, 32, 32]}]{{{stats}}}}}""";
        static string Stats(double run, double wait) =>
            $$$$""", "thread_scheduling_stats": {"main_thread": {"thread_pool_name": "session-1-intra-op", "block_size": [1], "core": 0, "Distribution": 0, "DistributionEnqueue": 0, "Run": {{{{run}}}}, "Wait": {{{{wait}}}}, "WaitRevoke": 0}, "sub_threads": {"1": {"num_run": 3, "core": 1}}}""";
        string trace = "[" + string.Join(",",
            Event("Conv", 1000, Stats(800, 200)),
            Event("Conv", 1000, Stats(700, 300)),
            Event("Add", 100, ""),                 // ran on the calling thread alone: no statistics, no wait
            Event("MatMul", 400, Stats(300, 100))) + "]";
        string file = dir.File("unet-profile.json", trace);

        var operators = OperatorProfile.Summarize([("unet", file)]);
        var conv = operators.Single(o => o.OpType == "Conv");
        Assert.Equal(0.5, conv.WaitMilliseconds, 6);
        Assert.Equal(0.25, conv.WaitShare, 6);
        Assert.Equal(0, operators.Single(o => o.OpType == "Add").WaitMilliseconds);
        var unet = Assert.Single(OperatorProfile.Roofline(operators, new ProbeResult(2, 100, 100)));
        Assert.Equal(0.6, unet.WaitMilliseconds, 6);
        Assert.Equal(0.6 / 2.5, unet.WaitShare, 6);
    }

    [Fact]
    public void TheRooflineIsTheCountedFlopsAtPeakAgainstAllKernelTime()
    {
        OperatorTime[] ops =
        [
            new("unet", "Conv", 10, 600, 0.6, 120),        // 120 GFLOP
            new("unet", "MatMul", 10, 200, 0.2, 40),       // 40 GFLOP
            new("unet", "GroupNorm", 10, 200, 0.2, 0),     // time with no FLOPs
            new("vae_decoder", "Conv", 1, 100, 1, 10),
        ];
        var roofline = OperatorProfile.Roofline(ops, new ProbeResult(2, MatMulGflops: 160, Conv3x3Gflops: 200));
        var unet = roofline.Single(r => r.Component == "unet");
        Assert.Equal(1000, unet.KernelMilliseconds, 6);
        Assert.Equal(800, unet.IdealMilliseconds, 6);   // 160 GFLOP at 200 GFLOP/s
        Assert.Equal(80, unet.Percent, 6);
        Assert.Equal(850, unet.OperatorIdealMilliseconds!.Value, 6); // Conv 120 GFLOP at 200, MatMul 40 at 160
        Assert.Equal(85, unet.OperatorPercent!.Value, 6);
        Assert.Equal(50, roofline.Single(r => r.Component == "vae_decoder").Percent, 6);
    }

    [Fact]
    public void EachOperatorKindTakesItsOwnMeasuredRate()
    {
        var probe = new ProbeResult(2, MatMulGflops: 150, Conv3x3Gflops: 200) { AttentionGflops = 100 };
        Assert.Equal(200, probe.RateFor("Conv"));
        Assert.Equal(200, probe.RateFor("FusedConv"));
        Assert.Equal(150, probe.RateFor("MatMul"));
        Assert.Equal(150, probe.RateFor("Gemm"));
        Assert.Equal(100, probe.RateFor("MultiHeadAttention"));
        Assert.Equal(200, probe.RateFor("DynamicQuantizeMatMul")); // int8: the fp32 peak, as the single roofline does
        Assert.Equal(150, (probe with { AttentionGflops = null }).RateFor("MultiHeadAttention"));
        OperatorTime[] ops = [new("unet", "MultiHeadAttention", 4, 500, 0.5, 25), new("unet", "Add", 4, 500, 0.5, 0)];
        var unet = OperatorProfile.Roofline(ops, probe).Single();
        Assert.Equal(250, unet.OperatorIdealMilliseconds!.Value, 6); // 25 GFLOP at attention's 100 GFLOP/s
        Assert.Equal(25, unet.OperatorPercent!.Value, 6);
        Assert.Equal(12.5, unet.Percent, 6);                         // against the single 200 GFLOP/s peak
    }
}
