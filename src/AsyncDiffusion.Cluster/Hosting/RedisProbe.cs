using StackExchange.Redis;

namespace AsyncDiffusion.Cluster.Hosting;

/// <summary>
/// Pings Redis every second: a connection can look open while Redis answers nothing (paused,
/// partitioned), so readiness follows answers, not sockets.
/// </summary>
public sealed class RedisProbe : IDisposable
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(1), Grace = TimeSpan.FromSeconds(3);
    private readonly IConnectionMultiplexer _redis;
    private readonly Timer _timer;
    private long _lastAnswerTicks = Environment.TickCount64;
    private int _pinging;

    public RedisProbe(IConnectionMultiplexer redis)
    {
        _redis = redis;
        _timer = new Timer(_ => Ping(), null, TimeSpan.Zero, Every);
    }

    public bool Reachable => Environment.TickCount64 - Interlocked.Read(ref _lastAnswerTicks) < Grace.TotalMilliseconds;

    private async void Ping()
    {
        if (Interlocked.Exchange(ref _pinging, 1) == 1) return;
        try
        {
            await _redis.GetDatabase().PingAsync().WaitAsync(Every);
            Interlocked.Exchange(ref _lastAnswerTicks, Environment.TickCount64);
        }
        catch (Exception)
        {
            // No answer: Reachable turns false once the grace period passes.
        }
        finally
        {
            Interlocked.Exchange(ref _pinging, 0);
        }
    }

    public void Dispose() => _timer.Dispose();
}
