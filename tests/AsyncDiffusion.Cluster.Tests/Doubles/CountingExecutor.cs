using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Node;

namespace AsyncDiffusion.Cluster.Tests.Doubles;

/// <summary>Every execution of every job on every node of a test cluster, in start order.</summary>
public sealed class ExecutionLog
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _runs = new();
    private readonly ConcurrentDictionary<string, int> _inFlight = new();
    private readonly ConcurrentBag<string> _cancelled = new();

    public void Started(string jobId, string node)
    {
        _runs.GetOrAdd(jobId, _ => new()).Enqueue(node);
        _inFlight.AddOrUpdate(node, 1, (_, n) => n + 1);
    }

    public void Ended(string node) => _inFlight.AddOrUpdate(node, 0, (_, n) => n - 1);
    public void Cancelled(string jobId) => _cancelled.Add(jobId);

    public IReadOnlyList<string> RunsOf(string jobId) => _runs.TryGetValue(jobId, out var q) ? q.ToArray() : [];
    public int InFlight(string node) => _inFlight.GetValueOrDefault(node);
    public bool WasCancelled(string jobId) => _cancelled.Contains(jobId);
}

/// <summary>
/// A node's engine for cluster tests: each step takes <see cref="StepTime"/>, the "image" is a
/// function of prompt and seed only (so any node makes the same bytes), and every run is logged.
/// </summary>
public sealed class CountingExecutor(string node, ExecutionLog log, int slots = 2, int maxJobs = 20) : IJobExecutor
{
    public static readonly TimeSpan StepTime = TimeSpan.FromMilliseconds(40);

    public IReadOnlyList<string> Models { get; } = ["tiny"];
    public int Slots => slots;
    public int MaxJobs => maxJobs;

    public static byte[] ImageFor(string prompt, long seed) => SHA256.HashData(Encoding.UTF8.GetBytes($"{prompt}|{seed}"));

    public async Task<ClusterJobResult> Execute(string jobId, ClusterRequest request, Action<int, int> progress, CancellationToken cancellation)
    {
        log.Started(jobId, node);
        try
        {
            int total = request.Steps * request.Count;
            for (int step = 1; step <= total; step++)
            {
                try
                {
                    await Task.Delay(StepTime, cancellation);
                }
                catch (OperationCanceledException)
                {
                    log.Cancelled(jobId);
                    throw;
                }
                progress(step, total);
            }
            var seeds = Enumerable.Range(0, request.Count).Select(i => request.Seed + i).ToArray();
            return new ClusterJobResult(seeds.Select(s => ImageFor(request.Prompt, s)).ToArray(), seeds, seeds.Select(s => $"{request.Prompt}, Seed: {s}").ToArray(),
                64, 64, "Euler a", total * StepTime.TotalMilliseconds);
        }
        finally
        {
            log.Ended(node);
        }
    }
}
