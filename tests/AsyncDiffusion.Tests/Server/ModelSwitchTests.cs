using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Tests.Models;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Switching models (A1111's sd_model_checkpoint) while clients keep working.</summary>
public sealed class ModelSwitchTests
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static long Counter(string metrics, string name) => long.Parse(Regex.Match(metrics, $@"^{name} (\d+)", RegexOptions.Multiline).Groups[1].Value);

    /// <summary>A server with two models whose second load waits for <paramref name="gate"/> (sd15 takes 10–27 s).</summary>
    private static Task<TestServer> StartWithSlowSecondModel(SemaphoreSlim gate)
    {
        string first = TinyModels.Folder("optimum"), second = TinyModels.Folder("optimum-1.24");
        var options = new EngineOptions { Streams = 1, MaxBatch = 4, MaxJobs = 16 };
        return TestServer.StartAsync(o => o with { Models = [first, second] }, openModel: folder =>
        {
            if (folder == Path.GetFullPath(second)) gate.Wait();
            return DiffusionEngine.Open(folder, options, new AsyncDiffusion.Pipelines.GenerationLimits { MaxSteps = 100, MaxWidth = 256, MaxHeight = 256, MaxCount = 4 });
        });
    }

    private static async Task<string> SecondTitle(HttpClient http) =>
        (await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/sd-models"))[1].GetProperty("title").GetString()!;

    [Fact]
    public async Task RequestsGoOnWhileTheNewModelLoads()
    {
        using var gate = new SemaphoreSlim(0);
        await using var server = await StartWithSlowSecondModel(gate);
        var http = server.Client;
        var switching = http.PostAsync("/sdapi/v1/options", Json(JsonSerializer.Serialize(new { sd_model_checkpoint = await SecondTitle(http) })));
        await Task.Delay(200);
        Assert.False(switching.IsCompleted, "the load is held at the gate");

        var clock = Stopwatch.StartNew();
        var gen = await http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2}"""));
        Assert.Equal(HttpStatusCode.OK, gen.StatusCode);
        Assert.DoesNotContain("1.24", await gen.Content.ReadAsStringAsync());
        Assert.DoesNotContain("1.24", (await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("sd_model_checkpoint").GetString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"requests waited {clock.Elapsed.TotalSeconds:F1} s for the load");

        gate.Release();
        Assert.Equal(HttpStatusCode.OK, (await switching).StatusCode);
        Assert.Contains("optimum-1.24", (await http.GetFromJsonAsync<JsonElement>("/sdapi/v1/options")).GetProperty("sd_model_checkpoint").GetString());
    }

    [Fact]
    public async Task JobsOfTheOldModelStayFindableAndCancellableAndCountersNeverGoBack()
    {
        using var gate = new SemaphoreSlim(1);
        await using var server = await StartWithSlowSecondModel(gate);
        var http = server.Client;
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2}"""))).StatusCode);
        string before = await http.GetStringAsync("/metrics");
        Assert.Equal(1, Counter(before, "asyncdiffusion_jobs_succeeded_total"));

        var submitted = await http.PostAsync("/api/v1/jobs", Json("""{"prompt": "slow", "steps": 100, "width": 256, "height": 256}"""));
        string id = (await submitted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/sdapi/v1/options", Json(JsonSerializer.Serialize(new { sd_model_checkpoint = await SecondTitle(http) })))).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/v1/jobs/{id}")).StatusCode);
        string after = await http.GetStringAsync("/metrics");
        Assert.Equal(1, Counter(after, "asyncdiffusion_jobs_succeeded_total"));
        Assert.Equal(1, Counter(after, "asyncdiffusion_running_jobs") + Counter(after, "asyncdiffusion_queue_depth"));

        Assert.Equal(HttpStatusCode.OK, (await http.DeleteAsync($"/api/v1/jobs/{id}")).StatusCode);
        string state = "";
        for (int i = 0; i < 100 && state != "cancelled"; i++)
        {
            state = (await http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}")).GetProperty("state").GetString()!;
            await Task.Delay(50);
        }
        Assert.Equal("cancelled", state);
        Assert.Equal(1, Counter(await http.GetStringAsync("/metrics"), "asyncdiffusion_jobs_cancelled_total"));

        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/sdapi/v1/txt2img", Json("""{"prompt": "x", "steps": 2}"""))).StatusCode);
        Assert.Equal(2, Counter(await http.GetStringAsync("/metrics"), "asyncdiffusion_jobs_succeeded_total"));
    }
}
