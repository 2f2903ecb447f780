using AsyncDiffusion.Cluster.Hosting;

namespace AsyncDiffusion.Cluster.Tests;

public sealed class ClusterConnectionTests
{
    [Theory]
    [InlineData("redis://10.0.0.5:6390", "10.0.0.5", 6390)]
    [InlineData("redis://cache.local", "cache.local", 6379)]
    public void A_redis_url_names_the_host_and_port(string text, string host, int port)
    {
        var connection = ClusterConnection.Parse(text);
        Assert.True(connection.IsRedis);
        Assert.Equal((host, port), (connection.RedisHost, connection.RedisPort));
    }

    [Fact]
    public void Localhost_is_the_development_cluster_without_redis() => Assert.False(ClusterConnection.Parse("localhost").IsRedis);

    [Theory]
    [InlineData("http://10.0.0.5:6379")]
    [InlineData("10.0.0.5:6379")]
    [InlineData("redis:")]
    public void Anything_else_is_refused_with_the_forms_that_work(string text)
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => ClusterConnection.Parse(text));
        Assert.Contains($"--cluster '{text}'", e.Message);
        Assert.Contains("redis://HOST:PORT", e.Message);
    }

    [Fact]
    public void An_unreachable_redis_is_one_clear_error()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => ClusterConnection.Parse("redis://127.0.0.1:1").ConnectRedis());
        Assert.StartsWith("cannot reach Redis at 127.0.0.1:1", e.Message);
    }
}
