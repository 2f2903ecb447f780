using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Tests.Pipelines;
using Xunit.Abstractions;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Runs alone, so the memory it measures is the server's.</summary>
[CollectionDefinition(nameof(ServerFuzzCollection), DisableParallelization = true)]
public sealed class ServerFuzzCollection;

/// <summary>
/// A bounded, seeded fuzz of every route on the in-process server with the tiny model: valid and
/// mutated JSON, multipart, base64 and data URIs, crafted image headers, huge, negative and
/// non-finite numbers, deep nesting, invalid UTF-8. No request may get a 5xx or a response cut
/// off; the server stays up and its memory comes back after the run.
/// </summary>
[Collection(nameof(ServerFuzzCollection))]
public sealed class ServerFuzzTests(ITestOutputHelper output)
{
    private const int Requests = 3000, Clients = 8, Seed = 20240611;

    [Fact]
    public async Task AFewThousandFuzzedRequestsGetNo5xxAndNoCutOffResponse()
    {
        await using var server = await TestServer.StartAsync(o => o with
        {
            Engine = o.Engine with { MaxJobs = 8, RetainedResultBytes = 16 << 20 },
            Limits = new GenerationLimits { MaxSteps = 4, MaxWidth = 128, MaxHeight = 128, MaxCount = 2 },
            MaxBodyBytes = 1 << 20,
            MaxImagePixels = 4_000_000,
            ImageStoreBytes = 16 << 20,
        });
        var http = server.Client;
        var title = (await http.GetJsonAsync("/sdapi/v1/sd-models"))[0].GetProperty("title").GetString()!;
        await http.PostAsync("/sdapi/v1/txt2img", new StringContent("""{"prompt": "warm up", "steps": 1}""", Encoding.UTF8, "application/json"));

        long managedBefore = ManagedAfterCollection(), rssBefore = PeakRssSampler.Rss();
        using var sampler = new PeakRssSampler();
        var fuzzer = new RequestFuzzer(Seed, title);
        var cases = Enumerable.Range(0, Requests).Select(_ => fuzzer.Next()).ToArray(); // made up front: the same cases whatever the timing
        var problems = new ConcurrentQueue<string>();
        var statuses = new ConcurrentDictionary<int, int>();
        int serverErrors = 0, cutOff = 0;
        using var gate = new SemaphoreSlim(Clients);
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(cases.Select(async c =>
        {
            await gate.WaitAsync();
            try
            {
                using var request = c.Build(fuzzer.KnownJobs);
                using var abort = c.ClientAbortsAfterMs is int ms ? new CancellationTokenSource(ms) : new CancellationTokenSource();
                HttpResponseMessage response;
                byte[] body;
                try
                {
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, abort.Token);
                    body = await response.Content.ReadAsByteArrayAsync(abort.Token);
                }
                catch (OperationCanceledException) when (c.ClientAbortsAfterMs is not null)
                {
                    return; // the client hung up on purpose
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    Interlocked.Increment(ref cutOff);
                    problems.Enqueue($"{c.Description}: connection broke ({e.Message})");
                    return;
                }
                using (response)
                {
                    int status = (int)response.StatusCode;
                    statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                    if (status >= 500)
                    {
                        Interlocked.Increment(ref serverErrors);
                        problems.Enqueue($"{c.Description}: {status} {Encoding.UTF8.GetString(body[..Math.Min(300, body.Length)])}");
                    }
                    if (Complete(response, body) is { } why)
                    {
                        Interlocked.Increment(ref cutOff);
                        problems.Enqueue($"{c.Description}: {status} response {why}");
                    }
                    if (status == 202 && JsonDocument.Parse(body).RootElement.TryGetProperty("id", out var id)) fuzzer.KnownJobs.Add(id.GetString()!);
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        double seconds = clock.Elapsed.TotalSeconds;

        Assert.Equal("ok", (await http.GetJsonAsync("/health")).GetProperty("status").GetString());
        for (int i = 0; i < 300 && !Idle(await http.GetStringAsync("/metrics")); i++) await Task.Delay(100);
        long peak = sampler.Stop();
        long managedAfter = ManagedAfterCollection(), rssAfter = PeakRssSampler.Rss();
        output.WriteLine($"{Requests} requests from {Clients} clients in {seconds:F1} s; statuses {string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}"))}");
        output.WriteLine($"5xx: {serverErrors}, cut off: {cutOff}; resident memory {rssBefore >> 20} MiB before, peak +{peak >> 20} MiB, {rssAfter >> 20} MiB after; managed heap {managedBefore >> 20} → {managedAfter >> 20} MiB");
        foreach (var p in problems.Take(20)) output.WriteLine(p);

        Assert.True(serverErrors == 0 && cutOff == 0, string.Join("\n", problems.Take(20)));
        Assert.True(statuses.Keys.Count(s => s is >= 200 and < 300) > 0 && statuses.Keys.Any(s => s is >= 400 and < 500), "the fuzz should mix successes and refusals");
        Assert.True(managedAfter - managedBefore < 64L << 20, $"the managed heap kept {(managedAfter - managedBefore) >> 20} MiB after the run");
        Assert.True(peak < 1L << 30, $"resident memory peaked {peak >> 20} MiB above the start");
    }

    private static long ManagedAfterCollection()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static bool Idle(string metrics) =>
        Regex.Match(metrics, @"^asyncdiffusion_queue_depth (\d+)", RegexOptions.Multiline).Groups[1].Value == "0"
        && Regex.Match(metrics, @"^asyncdiffusion_running_jobs (\d+)", RegexOptions.Multiline).Groups[1].Value == "0";

    /// <summary>Why the body is not a whole response of its declared type, or null when it is.</summary>
    private static string? Complete(HttpResponseMessage response, byte[] body)
    {
        if (response.Content.Headers.ContentLength is long length && length != body.Length) return $"has {body.Length} of {length} bytes";
        string media = response.Content.Headers.ContentType?.MediaType ?? "";
        if (media == "application/json")
        {
            try
            {
                JsonDocument.Parse(body).Dispose();
            }
            catch (JsonException e)
            {
                return $"is not whole JSON ({e.Message})";
            }
        }
        if (media == "text/event-stream" && body.Length > 0 && !Encoding.UTF8.GetString(body).EndsWith("\n\n", StringComparison.Ordinal)) return "ends mid-event";
        if (media == "image/png" && (body.Length < 8 || body[0] != 0x89)) return "is not a PNG";
        return null;
    }
}

internal static class FuzzHttp
{
    public static async Task<JsonElement> GetJsonAsync(this HttpClient http, string path) =>
        JsonDocument.Parse(await http.GetStringAsync(path)).RootElement.Clone();
}

/// <summary>One fuzzed request: how to build it (given the ids of jobs made so far) and whether the client hangs up early.</summary>
internal sealed record FuzzCase(string Description, Func<ConcurrentBag<string>, HttpRequestMessage> Build, int? ClientAbortsAfterMs);

/// <summary>Makes seeded requests: mostly mutations of valid ones, so that both validation and the work behind it are reached.</summary>
internal sealed class RequestFuzzer(int seed, string modelTitle)
{
    private readonly Random _random = new(seed);
    public ConcurrentBag<string> KnownJobs { get; } = new();

    private static readonly byte[] Png64 = ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png, "a fox\nSteps: 2, Sampler: Euler, Seed: 1");
    private static readonly byte[] Jpeg64 = ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Jpeg);
    private static readonly byte[] Webp64 = ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Webp);
    private static readonly byte[] Strip = ImageCodec.Encode(RgbImage.Create(100_000, 16), ImageFormat.Png);

    /// <summary>Images and things that claim to be: valid ones, cut ones, and headers declaring huge sizes.</summary>
    private static readonly (string Name, byte[] Bytes)[] Images =
    [
        ("png", Png64), ("jpeg", Jpeg64), ("webp", Webp64), ("strip", Strip), ("tiny", ImageCodec.Encode(RgbImage.Create(1, 1), ImageFormat.Png)),
        ("png-header-100000²", UploadHardeningTests.HeaderOnlyPng(100_000, 100_000)), ("png-header-2000²", UploadHardeningTests.HeaderOnlyPng(2000, 2000, 21)),
        ("bmp-header-2000²", UploadHardeningTests.HeaderOnlyBmp(2000, 2000)), ("bmp-header-negative", UploadHardeningTests.HeaderOnlyBmp(-5, int.MinValue)),
        ("png-cut", Png64[..(Png64.Length / 2)]), ("jpeg-cut", Jpeg64[..(Jpeg64.Length / 3)]), ("webp-cut", Webp64[..(Webp64.Length / 2)]),
        ("png-chunk-2^31", PngWithChunkLength(0x7FFFFFF0)), ("jpeg-sof-65535²", JpegHeader(65535, 65535)), ("webp-vp8x-16384²", WebpHeader(16384, 16384)),
        ("gif-65535²", [.. "GIF89a"u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xF7, 0, 0, 0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
        ("random", RandomBytes(new Random(7), 300)), ("empty", []),
    ];

    private static readonly string[] Keys =
    [
        "prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed", "batch_size", "n_iter", "sampler_name", "scheduler", "denoising_strength",
        "init_images", "send_images", "n", "size", "response_format", "output_format", "stream", "partial_images", "guidance_scale", "decoder", "init_image",
        "strength", "image", "sd_model_checkpoint", "override_settings", "unknown_field",
    ];

    public FuzzCase Next()
    {
        var r = new Random(_random.Next()); // each case draws from its own generator
        int kind = r.Next(100);
        if (kind < 62) return JsonCase(r);
        if (kind < 77) return MultipartCase(r);
        return GetCase(r);
    }

    private FuzzCase JsonCase(Random r)
    {
        var (route, template) = r.Next(8) switch
        {
            0 => ("/sdapi/v1/txt2img", new JsonObject { ["prompt"] = "a fox", ["steps"] = 2, ["width"] = 64, ["height"] = 64, ["cfg_scale"] = 5, ["seed"] = 1, ["sampler_name"] = "Euler a" }),
            1 => ("/sdapi/v1/img2img", new JsonObject { ["prompt"] = "a fox", ["steps"] = 2, ["denoising_strength"] = 0.5, ["init_images"] = new JsonArray(ImageText(r)) }),
            2 => ("/v1/images/generations", new JsonObject { ["prompt"] = "a fox", ["size"] = "64x64", ["n"] = 1, ["response_format"] = r.Next(2) == 0 ? "url" : "b64_json" }),
            3 => ("/v1/images/generations", new JsonObject { ["prompt"] = "a fox", ["size"] = "64x64", ["stream"] = true, ["partial_images"] = 1 }),
            4 => ("/api/v1/jobs", new JsonObject { ["prompt"] = "a fox", ["steps"] = 2, ["width"] = 64, ["height"] = 64, ["scheduler"] = "Euler" }),
            5 => ("/api/v1/jobs", new JsonObject { ["prompt"] = "a fox", ["steps"] = 2, ["init_image"] = ImageText(r), ["strength"] = 0.6 }),
            6 => ("/sdapi/v1/png-info", new JsonObject { ["image"] = ImageText(r) }),
            _ => ("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = r.Next(3) == 0 ? "nope" : modelTitle, ["samples_format"] = "png" }),
        };
        int mutations = r.Next(10) < 2 ? 0 : 1 + r.Next(3);
        var notes = new List<string>();
        for (int i = 0; i < mutations && template.Count > 0; i++)
        {
            string key = Keys[r.Next(Keys.Length)];
            if (r.Next(6) == 0)
            {
                template.Remove(key);
                notes.Add($"-{key}");
            }
            else
            {
                var value = WeirdValue(r);
                template[key] = value?.DeepClone();
                notes.Add($"{key}={Shorten(value?.ToJsonString() ?? "null")}");
            }
        }
        byte[] body = Encoding.UTF8.GetBytes(template.ToJsonString());
        if (r.Next(4) == 0)
        {
            // What a JSON object cannot hold: duplicate keys, lone surrogates, numbers beyond double, very deep nesting.
            string key = Keys[r.Next(Keys.Length)];
            string raw = r.Next(6) switch
            {
                0 => "\"a \\ud800 b\"",
                1 => "\"\\udfff\"",
                2 => "1e400",
                3 => new string('[', 40 + r.Next(5000)) + new string(']', 0),
                4 => "-0.0e-999999",
                _ => "\"x\"",
            };
            body = [(byte)'{', .. Encoding.UTF8.GetBytes($"\"{key}\": {raw}, "), .. body[1..]];
            notes.Add($"raw {key}: {Shorten(raw)}");
        }
        if (r.Next(5) == 0)
        {
            body = MutateBytes(r, body);
            notes.Add("bytes mutated");
        }
        string type = r.Next(24) switch
        {
            0 => "text/plain",
            1 => "",
            2 => "application/json; charset=utf-8",
            3 => "application/x-www-form-urlencoded",
            _ => "application/json",
        };
        int? abortMs = r.Next(100) == 0 ? 1 + r.Next(40) : null;
        return new FuzzCase($"POST {route} [{type}] {string.Join("; ", notes)}", _ =>
        {
            var content = new ByteArrayContent(body);
            if (type.Length > 0) content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
            return new HttpRequestMessage(HttpMethod.Post, route) { Content = content };
        }, abortMs);
    }

    private FuzzCase MultipartCase(Random r)
    {
        string route = r.Next(2) == 0 ? "/v1/images/edits" : "/v1/images/variations";
        var (imageName, image) = r.Next(3) == 0 ? Images[r.Next(Images.Length)] : ("png", Png64);
        string boundary = "fuzz" + r.Next(1_000_000);
        var parts = new List<(string Name, string? File, byte[] Bytes)> { ("prompt", null, "snowy"u8.ToArray()), ("image", "a.png", image), ("size", null, "64x64"u8.ToArray()) };
        var notes = new List<string> { imageName };
        if (r.Next(3) == 0)
        {
            string field = new[] { "n", "size", "response_format", "stream", "partial_images", "output_format", "prompt" }[r.Next(7)];
            string value = new[] { "4294967297", "-1", "0", "NaN", "1e309", "99999x99999", "0x0", "", "true", "\ud83d\ude00", new string('x', 20_000), "2" }[r.Next(12)];
            parts.Add((field, null, Encoding.UTF8.GetBytes(value)));
            notes.Add($"{field}={Shorten(value)}");
        }
        if (r.Next(8) == 0) parts.RemoveAll(p => p.Name == "image");
        var body = new List<byte>();
        foreach (var (name, file, bytes) in parts)
        {
            body.AddRange(Encoding.UTF8.GetBytes($"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{(file is null ? "" : $"; filename=\"{file}\"")}\r\n"));
            if (file is not null) body.AddRange("Content-Type: image/png\r\n"u8.ToArray());
            body.AddRange("\r\n"u8.ToArray());
            body.AddRange(bytes);
            body.AddRange("\r\n"u8.ToArray());
        }
        body.AddRange(Encoding.UTF8.GetBytes($"--{boundary}--\r\n"));
        byte[] bytesOut = body.ToArray();
        string type = $"multipart/form-data; boundary={boundary}";
        switch (r.Next(8))
        {
            case 0: bytesOut = bytesOut[..r.Next(bytesOut.Length)]; notes.Add("truncated"); break;
            case 1: bytesOut = MutateBytes(r, bytesOut); notes.Add("bytes mutated"); break;
            case 2: type = "multipart/form-data"; notes.Add("no boundary"); break;
            case 3: type = "multipart/form-data; boundary=other"; notes.Add("wrong boundary"); break;
            case 4: type = "application/json"; notes.Add("json type"); break;
        }
        return new FuzzCase($"POST {route} {string.Join("; ", notes)}", _ =>
        {
            var content = new ByteArrayContent(bytesOut);
            content.Headers.TryAddWithoutValidation("Content-Type", type);
            return new HttpRequestMessage(HttpMethod.Post, route) { Content = content };
        }, r.Next(100) == 0 ? 1 + r.Next(40) : null);
    }

    private FuzzCase GetCase(Random r)
    {
        int which = r.Next(14);
        string randomId = Guid.NewGuid().ToString("N")[..r.Next(1, 32)];
        bool useKnown = r.Next(2) == 0;
        string Id(ConcurrentBag<string> known) => useKnown && known.TryPeek(out _) ? known.ElementAt(r.Next(known.Count)) : randomId;
        return which switch
        {
            0 or 1 => new("GET progress", _ => new(HttpMethod.Get, $"/sdapi/v1/progress?skip_current_image={(r.Next(2) == 0 ? "false" : "true")}"), null),
            2 => new("GET job", k => new(HttpMethod.Get, $"/api/v1/jobs/{Id(k)}"), null),
            3 => new("GET job events", k => new(HttpMethod.Get, $"/api/v1/jobs/{Id(k)}/events"), null),
            4 => new("GET job image", k => new(HttpMethod.Get, $"/api/v1/jobs/{Id(k)}/images/{r.Next(-2, 4)}"), null),
            5 => new("GET job preview", k => new(HttpMethod.Get, $"/api/v1/jobs/{Id(k)}/preview"), null),
            6 => new("DELETE job", k => new(HttpMethod.Delete, $"/api/v1/jobs/{Id(k)}"), null),
            7 => new("GET image file", _ => new(HttpMethod.Get, $"/v1/images/files/{randomId}.png"), null),
            8 => new("GET catalogue", _ => new(HttpMethod.Get, new[] { "/sdapi/v1/sd-models", "/sdapi/v1/samplers", "/sdapi/v1/options", "/metrics", "/ready", "/", "/api/v1/openapi.json" }[r.Next(7)]), null),
            9 => new("POST interrupt", _ => new(HttpMethod.Post, r.Next(2) == 0 ? "/sdapi/v1/interrupt" : "/sdapi/v1/skip"), null),
            10 => new("PUT txt2img", _ => new(HttpMethod.Put, "/sdapi/v1/txt2img") { Content = new StringContent("{}", Encoding.UTF8, "application/json") }, null),
            11 => new("GET odd path", _ => new(HttpMethod.Get, new[] { "/sdapi/v1/%ff%fe", "/api/v1/jobs/%00", "/v1/images/files/..%2f..%2fetc%2fpasswd", "/sdapi/v1/progress?x=%ff", "/api/v1/jobs//events" }[r.Next(5)]), null),
            _ => new("GET job events (known)", k => new(HttpMethod.Get, $"/api/v1/jobs/{Id(k)}/events"), null),
        };
    }

    private string ImageText(Random r)
    {
        var (_, bytes) = r.Next(2) == 0 ? ("png", Png64) : Images[r.Next(Images.Length)];
        string b64 = Convert.ToBase64String(bytes);
        return r.Next(8) switch
        {
            0 => "data:image/png;base64," + b64,
            1 => "data:application/octet-stream;base64," + b64,
            2 => "data:,",
            3 => "!!not base64!!",
            4 => "https://example.com/cat.png",
            5 => b64[..(b64.Length / 2 / 4 * 4)],
            _ => b64,
        };
    }

    private static JsonNode? WeirdValue(Random r) => r.Next(22) switch
    {
        0 => 4294967297L,
        1 => -4294967297L,
        2 => long.MaxValue,
        3 => -1,
        4 => -5,
        5 => 0,
        6 => "NaN",
        7 => "Infinity",
        8 => 1.7976931348623157e308,
        9 => 2.5,
        10 => true,
        11 => null,
        12 => "",
        13 => new string('x', 20_000),
        14 => "宇航员 😀 \u0000 \t",
        15 => "12",
        16 => new JsonObject { ["nested"] = new JsonArray(1, "two", null) },
        17 => new JsonArray("a", 2),
        18 => "Euler a",
        19 => 64,
        20 => 1e-300,
        _ => "9999999999999999999999",
    };

    private static byte[] MutateBytes(Random r, byte[] body)
    {
        var bytes = body.ToList();
        int edits = 1 + r.Next(4);
        for (int i = 0; i < edits && bytes.Count > 0; i++)
        {
            int at = r.Next(bytes.Count);
            switch (r.Next(5))
            {
                case 0: bytes[at] = (byte)r.Next(256); break;
                case 1: bytes.InsertRange(at, new byte[] { 0xFF, 0xC3, 0x28, 0xED, 0xA0, 0x80 }[..(1 + r.Next(6))]); break;
                case 2: bytes.RemoveRange(at, bytes.Count - at); break;
                case 3: bytes.RemoveAt(at); break;
                default: bytes.Insert(at, (byte)"{}[]\",:\\"[r.Next(8)]); break;
            }
        }
        return bytes.ToArray();
    }

    private static string Shorten(string s) => s.Length > 40 ? s[..40] + "…" : s;

    private static byte[] RandomBytes(Random r, int n)
    {
        var b = new byte[n];
        r.NextBytes(b);
        return b;
    }

    private static byte[] PngWithChunkLength(uint length)
    {
        var png = Png64.ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(33), length);
        return png;
    }

    private static byte[] JpegHeader(int width, int height) =>
        [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, (byte)(height >> 8), (byte)height, (byte)(width >> 8), (byte)width, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9];

    private static byte[] WebpHeader(int width, int height)
    {
        int w = width - 1, h = height - 1;
        return [.. "RIFF"u8, 22, 0, 0, 0, .. "WEBP"u8, .. "VP8X"u8, 10, 0, 0, 0, 0, 0, 0, 0, (byte)w, (byte)(w >> 8), (byte)(w >> 16), (byte)h, (byte)(h >> 8), (byte)(h >> 16)];
    }
}
