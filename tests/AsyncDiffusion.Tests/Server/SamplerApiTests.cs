using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// AUTOMATIC1111's sampler and schedule-type names over <c>/sdapi/v1</c>: the catalogues list
/// exactly what works, every listed pair generates (as separate fields and as one combined name,
/// the same image either way), and anything else is a 400 that lists what is available.
/// </summary>
public sealed class SamplerApiTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    [Fact]
    public async Task TheCataloguesListEverySamplerWithTheScheduleTypesItTakes()
    {
        var samplers = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/samplers");
        Assert.Equal(SchedulerRegistry.Names, samplers.EnumerateArray().Select(s => s.GetProperty("name").GetString()));
        var dpm = samplers.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "DPM++ 2M");
        Assert.Equal(["Automatic", "Uniform", "Karras", "Exponential", "SGM Uniform", "Simple", "Beta"],
            dpm.GetProperty("schedule_types").EnumerateArray().Select(t => t.GetString()!));
        var lcm = samplers.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "LCM");
        Assert.Equal(["Automatic"], lcm.GetProperty("schedule_types").EnumerateArray().Select(t => t.GetString()!));

        var types = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/schedulers");
        Assert.Equal(["automatic", "uniform", "karras", "exponential", "sgm_uniform", "simple", "beta"],
            types.EnumerateArray().Select(t => t.GetProperty("name").GetString()!));
        Assert.Equal(7.0, types.EnumerateArray().Single(t => t.GetProperty("label").GetString() == "Karras").GetProperty("default_rho").GetDouble());
    }

    [Fact]
    public async Task EveryListedSamplerAndScheduleTypeGeneratesAsSeparateFieldsAndAsOneName()
    {
        var samplers = await Http.GetFromJsonAsync<JsonElement>("/sdapi/v1/samplers");
        var pairs = samplers.EnumerateArray()
            .SelectMany(s => s.GetProperty("schedule_types").EnumerateArray().Select(t => (Sampler: s.GetProperty("name").GetString()!, Type: t.GetString()!)))
            .ToList();
        Assert.True(pairs.Count > 100, $"only {pairs.Count} pairs listed");

        var failures = new List<string>();
        using var gate = new SemaphoreSlim(6); // the engine admits 16 jobs; stay well below
        await Task.WhenAll(pairs.Select(async pair =>
        {
            await gate.WaitAsync();
            try
            {
                string expected = pair.Type == "Automatic" ? pair.Sampler : $"{pair.Sampler} {pair.Type}";
                var separate = await Generate(new { prompt = "a boat", steps = 2, width = 64, height = 64, seed = 5, cfg_scale = 5, sampler_name = pair.Sampler, scheduler = pair.Type });
                var combined = await Generate(new { prompt = "a boat", steps = 2, width = 64, height = 64, seed = 5, cfg_scale = 5, sampler_name = expected });
                if ((separate.Error ?? combined.Error) is { } error) { lock (failures) failures.Add($"{pair}: {error}"); return; }
                if (separate.Sampler != expected || combined.Sampler != expected)
                    lock (failures) failures.Add($"{pair}: infotext says '{separate.Sampler}' / '{combined.Sampler}', expected '{expected}'");
                else if (!separate.Png.SequenceEqual(combined.Png))
                    lock (failures) failures.Add($"{pair}: separate fields and the combined name gave different images");
            }
            finally { gate.Release(); }
        }));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private async Task<(string? Error, string Sampler, byte[] Png)> Generate(object body)
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Json(body));
        string text = await res.Content.ReadAsStringAsync();
        if (res.StatusCode != HttpStatusCode.OK) return ($"{(int)res.StatusCode} {text}", "", []);
        using var doc = JsonDocument.Parse(text);
        var png = Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!);
        string parameters = PngText.Read(png)["parameters"];
        string sampler = parameters.Split(", ").Single(p => p.StartsWith("Sampler: ", StringComparison.Ordinal))["Sampler: ".Length..];
        using var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!);
        if (info.RootElement.GetProperty("sampler_name").GetString() != sampler) return ("info.sampler_name differs from the infotext", sampler, png);
        return (null, sampler, png);
    }

    [Theory]
    [InlineData("""{"prompt": "x", "steps": 2, "sampler_name": "DPM fast"}""", "Sampler not found: 'DPM fast'; available: Euler a, Euler, LMS, Heun")]
    [InlineData("""{"prompt": "x", "steps": 2, "sampler_name": "Euler", "scheduler": "Align Your Steps"}""", "Scheduler not found: 'Align Your Steps'; available: Automatic, Uniform, Karras")]
    [InlineData("""{"prompt": "x", "steps": 2, "sampler_name": "Euler a", "scheduler": "Karras"}""", "'Euler a' has no schedule type 'Karras'")]
    [InlineData("""{"prompt": "x", "steps": 2, "sampler_name": "LCM Beta"}""", "'LCM' has no schedule type 'Beta'")]
    public async Task UnknownOrUnsupportedNamesAreA400ListingWhatIsAvailable(string body, string message)
    {
        var res = await Http.PostAsync("/sdapi/v1/txt2img", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        string text = await res.Content.ReadAsStringAsync();
        Assert.Contains(message, text);
    }

    [Fact]
    public async Task TheScheduleTypeInACombinedNameWinsAndAScheduleTypeAloneAppliesToTheModelsScheduler()
    {
        // A1111 reads "DPM++ 2M Karras" as sampler + Karras whatever the scheduler field says.
        var named = await Generate(new { prompt = "x", steps = 2, width = 64, height = 64, seed = 1, sampler_name = "DPM++ 2M Karras", scheduler = "Exponential" });
        Assert.Null(named.Error);
        Assert.Equal("DPM++ 2M Karras", named.Sampler);
        // The tiny model's own scheduler is PNDM, which follows timestep spacing.
        var alone = await Generate(new { prompt = "x", steps = 2, width = 64, height = 64, seed = 1, scheduler = "SGM Uniform" });
        Assert.Null(alone.Error);
        Assert.Equal("PNDM SGM Uniform", alone.Sampler);
    }
}
