using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using AsyncDiffusion.Benchmarking;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary>What <c>benchmark --url</c> measured against running servers.</summary>
public sealed record HttpBenchmarkReport(string[] Urls, int Requests, int Concurrency, int Steps, string Size, int Images, int Failed, int Rejected,
    double Seconds, double ImagesPerMinute, LatencySummary Latency, Dictionary<string, int> PerNode);

/// <summary>
/// <c>benchmark --url A,B,…</c>: a closed loop of clients driving running servers (one node or a
/// cluster) over the native jobs API, requests spread round-robin over the URLs; each request is
/// timed from POST to its <c>done</c> event. A 429 waits its Retry-After and tries again.
/// </summary>
public static class HttpBenchmark
{
    public static HttpBenchmarkReport Run(string[] urls, object requestBody, int requests, int concurrency, int warmup, int steps, string size, Action<string> log)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        int next = 0, failed = 0, rejected = 0, images = 0;
        var latencies = new List<double>();
        var perNode = new Dictionary<string, int>();
        async Task<(double Ms, string Node, int Images)?> One(int i)
        {
            string url = urls[i % urls.Length];
            var clock = Stopwatch.StartNew();
            while (true)
            {
                using var response = await http.PostAsJsonAsync($"{url}/api/v1/jobs", requestBody);
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    Interlocked.Increment(ref rejected);
                    await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
                    continue;
                }
                if (response.StatusCode != HttpStatusCode.Accepted)
                    throw new AsyncDiffusionException($"{url}/api/v1/jobs answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                string id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
                using (var events = await http.GetStreamAsync($"{url}/api/v1/jobs/{id}/events"))
                using (var reader = new StreamReader(events))
                    while (await reader.ReadLineAsync() is { } line && line != "event: done") { }
                double ms = clock.Elapsed.TotalMilliseconds;
                var job = await http.GetFromJsonAsync<JsonElement>($"{url}/api/v1/jobs/{id}");
                if (job.GetProperty("state").GetString() != "succeeded") return null;
                string node = job.TryGetProperty("node", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : url;
                return (ms, node, job.GetProperty("images").GetArrayLength());
            }
        }
        async Task Client(bool measured, int total)
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= total) return;
                var outcome = await One(i);
                if (!measured) continue;
                lock (latencies)
                {
                    if (outcome is not { } o)
                    {
                        failed++;
                        continue;
                    }
                    latencies.Add(o.Ms);
                    images += o.Images;
                    perNode[o.Node] = perNode.GetValueOrDefault(o.Node) + 1;
                }
            }
        }
        log($"Warm-up: {warmup} request(s) per URL…");
        Task.WhenAll(Enumerable.Range(0, urls.Length).Select(_ => Client(false, warmup * urls.Length))).GetAwaiter().GetResult();
        next = 0;
        log($"Measuring {requests} request(s) from {concurrency} client(s) over {urls.Length} URL(s)…");
        var wall = Stopwatch.StartNew();
        Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Client(true, requests))).GetAwaiter().GetResult();
        double seconds = wall.Elapsed.TotalSeconds;
        return new HttpBenchmarkReport(urls, requests, concurrency, steps, size, images, failed, rejected, seconds, images / seconds * 60, LatencySummary.Of(latencies), perNode);
    }

    public static void Write(IAnsiConsole console, HttpBenchmarkReport r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"[bold]HTTP[/] · {r.Urls.Length} URL(s), {r.Concurrency} client(s), {r.Size}, {r.Steps} steps")
            .AddColumn("metric").AddColumn(new TableColumn("value").RightAligned());
        t.AddRow("throughput", $"{r.ImagesPerMinute:F1} images/min ({r.Images} images in {r.Seconds:F1} s)");
        t.AddRow("latency p50 / p90 / p99 / max", $"{r.Latency.P50 / 1000:F2} / {r.Latency.P90 / 1000:F2} / {r.Latency.P99 / 1000:F2} / {r.Latency.Max / 1000:F2} s");
        t.AddRow("failed / 429 retries", $"{r.Failed} / {r.Rejected}");
        foreach (var (node, count) in r.PerNode.OrderBy(p => p.Key, StringComparer.Ordinal))
            t.AddRow($"ran on {Markup.Escape(node)}", $"{count} ({100.0 * count / Math.Max(1, r.PerNode.Values.Sum()):F0} %)");
        console.Write(t);
    }
}
