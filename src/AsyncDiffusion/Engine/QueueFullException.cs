namespace AsyncDiffusion.Engine;

/// <summary>Submission refused because the engine is at its admission limit; try again after <see cref="RetryAfter"/>.</summary>
public sealed class QueueFullException(int limit, TimeSpan retryAfter)
    : ResourceLimitException($"The queue is full ({limit} jobs queued or running); retry in about {Math.Ceiling(retryAfter.TotalSeconds)} s.")
{
    public int Limit { get; } = limit;
    public TimeSpan RetryAfter { get; } = retryAfter;
}
