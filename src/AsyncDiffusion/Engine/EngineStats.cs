namespace AsyncDiffusion.Engine;

/// <summary>Counters for monitoring (/metrics) and benchmarks.</summary>
public sealed record EngineStats(int Queued, int Running, long Submitted, long Succeeded, long Failed, long Cancelled, long Rejected, long Images,
    long UNetCalls, long UNetRows, long PromptCacheHits, long PromptCacheMisses, double UNetActiveMs);
