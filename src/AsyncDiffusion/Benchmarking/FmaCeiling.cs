using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace AsyncDiffusion.Benchmarking;

/// <summary>
/// This machine's arithmetic ceiling: fp32 fused multiply-adds on registers alone (no memory
/// traffic, no synchronisation), on one thread and on <see cref="Threads"/> threads at once.
/// ONNX Runtime's rates are read against it: a probe far under another machine's rates with a
/// ceiling as low means a slower or busier machine; with the ceiling high, the kernels or the
/// memory are what holds them back.
/// </summary>
public sealed record FmaCeiling(int Threads, int VectorBits, double OneThreadGflops, double Gflops)
{
    /// <summary>How many threads' worth the threads delivered together: ≈ <see cref="Threads"/> when each has a core to itself.</summary>
    public double Scaling => OneThreadGflops > 0 ? Gflops / OneThreadGflops : 0;

    /// <summary>The lowest and highest all-threads rate of the rounds: far apart when the cores are shared with other work.</summary>
    public double LowestGflops { get; init; }

    public double HighestGflops { get; init; }

    /// <summary>Accumulators in flight per thread: enough to cover the FMA latency on two ports.</summary>
    internal const int Accumulators = 12;

    /// <summary>
    /// <paramref name="rounds"/> rounds of one timed run on one thread and one on all threads
    /// (about 0.15 s each, in turns, so a busy moment on a shared host touches both), medians.
    /// </summary>
    public static FmaCeiling Measure(int threads, int rounds = 5)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "at least one thread");
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "at least one round");
        int lanes = VectorBitsHere / 32;
        // Calibrate on one thread (the JIT's first call included), then aim each run at ≈ 0.15 s.
        Kernel(100_000);
        var clock = Stopwatch.StartNew();
        const long calibration = 2_000_000;
        Kernel(calibration);
        long iterations = Math.Max(calibration, (long)(calibration * 0.15 / Math.Max(clock.Elapsed.TotalSeconds, 1e-6)));
        double flopsPerThread = 2.0 * iterations * Accumulators * lanes;
        var one = new List<double>();
        var all = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            bool oneFirst = r % 2 == 0;
            if (oneFirst || threads == 1) one.Add(flopsPerThread / Together(1, iterations) / 1e9);
            all.Add(threads == 1 ? one[^1] : threads * flopsPerThread / Together(threads, iterations) / 1e9);
            if (!oneFirst && threads > 1) one.Add(flopsPerThread / Together(1, iterations) / 1e9);
        }
        return new FmaCeiling(threads, VectorBitsHere, SampleStatistics.Median(one), SampleStatistics.Median(all))
        {
            LowestGflops = all.Min(),
            HighestGflops = all.Max(),
        };
    }

    /// <summary>The widest fused multiply-add this runtime emits here.</summary>
    internal static int VectorBitsHere => Avx512F.IsSupported ? 512 : Fma.IsSupported ? 256 : 128;

    /// <summary>
    /// Seconds from the first thread's start to the last one's end, all released together (as a
    /// statically split kernel waits for its slowest share, and for a thread that starts late).
    /// </summary>
    private static double Together(int threads, long iterations)
    {
        var starts = new long[threads];
        var ends = new long[threads];
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            starts[i] = Stopwatch.GetTimestamp();
            Sink(Kernel(iterations));
            ends[i] = Stopwatch.GetTimestamp();
        }) { IsBackground = true, Name = $"fma-ceiling-{i}" }).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        return (ends.Max() - starts.Min()) / (double)Stopwatch.Frequency;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Sink(float value) => GC.KeepAlive(value);

    /// <summary>
    /// <paramref name="iterations"/> rounds of <see cref="Accumulators"/> independent FMAs
    /// (a ← a·m + c) at the widest width, accumulator j starting at <see cref="Start"/>(j);
    /// returns the sum of every lane so nothing is elided.
    /// </summary>
    internal static float Kernel(long iterations) => VectorBitsHere switch
    {
        512 => Kernel512(iterations),
        256 => Kernel256(iterations),
        _ => Kernel128(iterations),
    };

    // a ← 0.999·a + 0.0005 settles at 0.5 from 1: the values move (a test can tell the loop ran) and never turn denormal (which would slow it).
    internal const float Factor = 0.999f, Addend = 0.0005f;

    /// <summary>Accumulator j's first value: distinct, so a loop that merged accumulators would sum differently.</summary>
    internal static float Start(int j) => 1f + j / 16f;

    // Each width in its own method with no calls inside the loop: the JIT keeps the accumulators in
    // registers only then (a call in the same method made it spill all twelve on every iteration).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel512(long iterations)
    {
        var m = Vector512.Create(Factor);
        var c = Vector512.Create(Addend);
        Vector512<float> a0 = Vector512.Create(Start(0)), a1 = Vector512.Create(Start(1)), a2 = Vector512.Create(Start(2)), a3 = Vector512.Create(Start(3)),
            a4 = Vector512.Create(Start(4)), a5 = Vector512.Create(Start(5)), a6 = Vector512.Create(Start(6)), a7 = Vector512.Create(Start(7)),
            a8 = Vector512.Create(Start(8)), a9 = Vector512.Create(Start(9)), a10 = Vector512.Create(Start(10)), a11 = Vector512.Create(Start(11));
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, c); a1 = Avx512F.FusedMultiplyAdd(a1, m, c);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, c); a3 = Avx512F.FusedMultiplyAdd(a3, m, c);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, c); a5 = Avx512F.FusedMultiplyAdd(a5, m, c);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, c); a7 = Avx512F.FusedMultiplyAdd(a7, m, c);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, c); a9 = Avx512F.FusedMultiplyAdd(a9, m, c);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, c); a11 = Avx512F.FusedMultiplyAdd(a11, m, c);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel256(long iterations)
    {
        var m = Vector256.Create(Factor);
        var c = Vector256.Create(Addend);
        Vector256<float> a0 = Vector256.Create(Start(0)), a1 = Vector256.Create(Start(1)), a2 = Vector256.Create(Start(2)), a3 = Vector256.Create(Start(3)),
            a4 = Vector256.Create(Start(4)), a5 = Vector256.Create(Start(5)), a6 = Vector256.Create(Start(6)), a7 = Vector256.Create(Start(7)),
            a8 = Vector256.Create(Start(8)), a9 = Vector256.Create(Start(9)), a10 = Vector256.Create(Start(10)), a11 = Vector256.Create(Start(11));
        for (long i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c);
            a2 = Fma.MultiplyAdd(a2, m, c); a3 = Fma.MultiplyAdd(a3, m, c);
            a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c);
            a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c);
            a8 = Fma.MultiplyAdd(a8, m, c); a9 = Fma.MultiplyAdd(a9, m, c);
            a10 = Fma.MultiplyAdd(a10, m, c); a11 = Fma.MultiplyAdd(a11, m, c);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel128(long iterations)
    {
        var m = Vector128.Create(Factor);
        var c = Vector128.Create(Addend);
        Vector128<float> a0 = Vector128.Create(Start(0)), a1 = Vector128.Create(Start(1)), a2 = Vector128.Create(Start(2)), a3 = Vector128.Create(Start(3)),
            a4 = Vector128.Create(Start(4)), a5 = Vector128.Create(Start(5)), a6 = Vector128.Create(Start(6)), a7 = Vector128.Create(Start(7)),
            a8 = Vector128.Create(Start(8)), a9 = Vector128.Create(Start(9)), a10 = Vector128.Create(Start(10)), a11 = Vector128.Create(Start(11));
        for (long i = 0; i < iterations; i++)
        {
            a0 = Step(a0, m, c); a1 = Step(a1, m, c); a2 = Step(a2, m, c); a3 = Step(a3, m, c);
            a4 = Step(a4, m, c); a5 = Step(a5, m, c); a6 = Step(a6, m, c); a7 = Step(a7, m, c);
            a8 = Step(a8, m, c); a9 = Step(a9, m, c); a10 = Step(a10, m, c); a11 = Step(a11, m, c);
        }
        return Vector128.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Step(Vector128<float> a, Vector128<float> m, Vector128<float> c) =>
        AdvSimd.IsSupported ? AdvSimd.FusedMultiplyAdd(c, a, m) : a * m + c;
}
