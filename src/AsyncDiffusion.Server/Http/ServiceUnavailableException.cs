namespace AsyncDiffusion.Server.Http;

/// <summary>A dependency the request needs (the cluster's job store) cannot be reached now: 503 with Retry-After.</summary>
public sealed class ServiceUnavailableException(string message, TimeSpan retryAfter, Exception? inner = null) : Exception(message, inner)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
