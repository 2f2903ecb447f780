namespace AsyncDiffusion.Cluster.Node;

/// <summary>Whether this node can take part in the cluster now: its last pull reached the dispatcher, and its job store answers.</summary>
public sealed class NodeHealth(Func<bool>? storeReachable = null)
{
    private readonly object _lock = new();
    private DateTime _lastPull = DateTime.MinValue;
    private string? _lastError;
    private readonly TaskCompletionSource<string?> _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How long since the last successful pull before the node says it is unready.</summary>
    public TimeSpan PullGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Completes with null once the dispatcher has accepted this node, or with the reason it refused it.</summary>
    public Task<string?> Registration => _registered.Task;

    public bool StoreReachable => storeReachable?.Invoke() ?? true;

    public void PullSucceeded()
    {
        lock (_lock)
        {
            _lastPull = DateTime.UtcNow;
            _lastError = null;
        }
        _registered.TrySetResult(null);
    }

    public void PullFailed(Exception e)
    {
        lock (_lock) _lastError = e.Message;
    }

    public void Refused(string reason) => _registered.TrySetResult(reason);

    /// <summary>Null when ready, else why not.</summary>
    public string? Unready()
    {
        if (!StoreReachable) return "the job store (Redis) cannot be reached";
        lock (_lock)
        {
            if (_lastPull == DateTime.MinValue) return "not yet joined the cluster";
            if (DateTime.UtcNow - _lastPull > PullGrace) return $"the dispatcher has not answered for {(DateTime.UtcNow - _lastPull).TotalSeconds:F0} s ({_lastError ?? "no answer"})";
        }
        return null;
    }
}
