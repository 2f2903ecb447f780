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
        512 => Kernel<Lanes512, Vector512<float>>(iterations),
        256 => Kernel<Lanes256, Vector256<float>>(iterations),
        _ => Kernel<Lanes128, Vector128<float>>(iterations),
    };

    // a ← 0.999·a + 0.0005 settles at 0.5 from 1: the values move (a test can tell the loop ran) and never turn denormal (which would slow it).
    internal const float Factor = 0.999f, Addend = 0.0005f;

    /// <summary>Accumulator j's first value: distinct, so a loop that merged accumulators would sum differently.</summary>
    internal static float Start(int j) => 1f + j / 16f;

    // One loop for every width: the JIT compiles it once per vector struct, with the lane operations inlined. It is
    // a method of its own with no calls inside the loop: only then does the JIT keep the accumulators in registers
    // (a call in the same method made it spill all twelve on every iteration).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Kernel<TLanes, TVector>(long iterations) where TLanes : struct, ILanes<TVector> where TVector : struct
    {
        TVector m = TLanes.Create(Factor), c = TLanes.Create(Addend);
        TVector a0 = TLanes.Create(Start(0)), a1 = TLanes.Create(Start(1)), a2 = TLanes.Create(Start(2)), a3 = TLanes.Create(Start(3)),
            a4 = TLanes.Create(Start(4)), a5 = TLanes.Create(Start(5)), a6 = TLanes.Create(Start(6)), a7 = TLanes.Create(Start(7)),
            a8 = TLanes.Create(Start(8)), a9 = TLanes.Create(Start(9)), a10 = TLanes.Create(Start(10)), a11 = TLanes.Create(Start(11));
        for (long i = 0; i < iterations; i++)
        {
            a0 = TLanes.MultiplyAdd(a0, m, c); a1 = TLanes.MultiplyAdd(a1, m, c);
            a2 = TLanes.MultiplyAdd(a2, m, c); a3 = TLanes.MultiplyAdd(a3, m, c);
            a4 = TLanes.MultiplyAdd(a4, m, c); a5 = TLanes.MultiplyAdd(a5, m, c);
            a6 = TLanes.MultiplyAdd(a6, m, c); a7 = TLanes.MultiplyAdd(a7, m, c);
            a8 = TLanes.MultiplyAdd(a8, m, c); a9 = TLanes.MultiplyAdd(a9, m, c);
            a10 = TLanes.MultiplyAdd(a10, m, c); a11 = TLanes.MultiplyAdd(a11, m, c);
        }
        return TLanes.Sum(a0) + TLanes.Sum(a1) + TLanes.Sum(a2) + TLanes.Sum(a3) + TLanes.Sum(a4) + TLanes.Sum(a5)
            + TLanes.Sum(a6) + TLanes.Sum(a7) + TLanes.Sum(a8) + TLanes.Sum(a9) + TLanes.Sum(a10) + TLanes.Sum(a11);
    }

    /// <summary>One vector width's operations for <see cref="Kernel{TLanes, TVector}"/>.</summary>
    private interface ILanes<TVector> where TVector : struct
    {
        static abstract TVector Create(float value);
        static abstract TVector MultiplyAdd(TVector a, TVector m, TVector c);
        static abstract float Sum(TVector a);
    }

    private readonly struct Lanes512 : ILanes<Vector512<float>>
    {
        public static Vector512<float> Create(float value) => Vector512.Create(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> m, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, m, c);
        public static float Sum(Vector512<float> a) => Vector512.Sum(a);
    }

    private readonly struct Lanes256 : ILanes<Vector256<float>>
    {
        public static Vector256<float> Create(float value) => Vector256.Create(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> m, Vector256<float> c) => Fma.MultiplyAdd(a, m, c);
        public static float Sum(Vector256<float> a) => Vector256.Sum(a);
    }

    // Where neither AVX-512 nor FMA is there: Arm's fused multiply-add, else a multiply and an add (still 2 FLOPs a lane).
    private readonly struct Lanes128 : ILanes<Vector128<float>>
    {
        public static Vector128<float> Create(float value) => Vector128.Create(value);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> m, Vector128<float> c) =>
            AdvSimd.IsSupported ? AdvSimd.FusedMultiplyAdd(c, a, m) : a * m + c;
        public static float Sum(Vector128<float> a) => Vector128.Sum(a);
    }
}
