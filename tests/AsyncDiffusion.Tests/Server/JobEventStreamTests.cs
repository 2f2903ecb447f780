using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace AsyncDiffusion.Tests.Server;

/// <summary>A job's server-sent events are a broadcast: every watcher, and every reconnect, gets the whole story.</summary>
public sealed class JobEventStreamTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static List<string> EventNames(string stream) =>
        stream.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..]).ToList();

    [Fact]
    public async Task TwoWatchersEachGetEveryEventAndAReconnectGetsTheHistory()
    {
        var res = await Http.PostAsync("/api/v1/jobs", new StringContent("""{"prompt": "a boat", "steps": 12, "seed": 1, "n": 2, "scheduler": "Euler"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Accepted, res.StatusCode);
        string id = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        // Two watchers at once (two browser tabs), one of them dropping out after the first step and reconnecting.
        var first = Http.GetStringAsync($"/api/v1/jobs/{id}/events");
        var second = Http.GetStringAsync($"/api/v1/jobs/{id}/events");
        using (var dropping = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/jobs/{id}/events"))
        {
            using var partial = await Http.SendAsync(dropping, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await partial.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line && line != "event: step") { }
        }
        var a = EventNames(await first);
        var b = EventNames(await second);
        var again = EventNames(await Http.GetStringAsync($"/api/v1/jobs/{id}/events"));

        foreach (var names in new[] { a, b, again })
        {
            Assert.Equal("queued", names[0]);
            Assert.Equal("started", names[1]);
            Assert.Equal(24, names.Count(n => n == "step"));
            Assert.Equal(2, names.Count(n => n == "image"));
            Assert.Equal("done", names[^1]);
        }
        Assert.Equal(a, b);
        Assert.Equal(a, again);
    }
}
