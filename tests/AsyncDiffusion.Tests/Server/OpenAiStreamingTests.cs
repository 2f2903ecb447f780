using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Server;

/// <summary>
/// OpenAI's streamed images and request checks, read as raw HTTP: the .NET SDK has no public image
/// streaming, so the events are held against the fields the official SDK types declare
/// (openai-python's ImageGenPartialImageEvent, ImageGenCompletedEvent and the image_edit twins).
/// </summary>
public sealed class OpenAiStreamingTests : IAsyncLifetime
{
    private static readonly string[] PartialImageFields = ["type", "b64_json", "created_at", "size", "quality", "background", "output_format", "partial_image_index"];
    private static readonly string[] CompletedFields = ["type", "b64_json", "created_at", "size", "quality", "background", "output_format", "usage"];

    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private sealed record ServerSentEvent(string Name, JsonElement Data);

    private async Task<List<ServerSentEvent>> Stream(HttpContent content, string path)
    {
        var res = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = content }, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("text/event-stream", res.Content.Headers.ContentType!.MediaType);
        var events = new List<ServerSentEvent>();
        foreach (var block in (await res.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n');
            string name = lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))[7..];
            using var data = JsonDocument.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..]);
            events.Add(new ServerSentEvent(name, data.RootElement.Clone()));
        }
        return events;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static MultipartFormDataContent EditForm(params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        var image = new ByteArrayContent(ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));
        image.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(image, "image", "init.png");
        foreach (var (name, value) in fields) form.Add(new StringContent(value), name);
        return form;
    }

    /// <summary>Checks one event against the SDK's declared fields and returns its decoded image.</summary>
    private static byte[] AssertEvent(ServerSentEvent e, string type, string[] fields, string format)
    {
        Assert.Equal(type, e.Name);
        Assert.Equal(fields.Order(), e.Data.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(type, e.Data.GetProperty("type").GetString());
        Assert.Equal("64x64", e.Data.GetProperty("size").GetString());
        Assert.Equal(format, e.Data.GetProperty("output_format").GetString());
        Assert.Contains(e.Data.GetProperty("quality").GetString(), new[] { "low", "medium", "high", "auto" });
        Assert.Contains(e.Data.GetProperty("background").GetString(), new[] { "transparent", "opaque", "auto" });
        Assert.InRange(e.Data.GetProperty("created_at").GetInt64(), DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        var image = Convert.FromBase64String(e.Data.GetProperty("b64_json").GetString()!);
        Assert.Equal(format, ImageMagic.FormatOf(image));
        return image;
    }

    /// <summary>
    /// Partial images come first, numbered from 0, then one completed event. A partial is the job's
    /// latest latents when the stream reaches its step, so a job that ends first sends fewer than
    /// asked (OpenAI allows that); the first is due a quarter to a third of the way in, long before the end.
    /// </summary>
    private static List<ServerSentEvent> AssertPartialsThenOneCompleted(List<ServerSentEvent> events, string prefix, int asked)
    {
        var partials = events.Take(events.Count - 1).ToList();
        Assert.InRange(partials.Count, 1, asked);
        Assert.All(partials, p => Assert.Equal($"{prefix}.partial_image", p.Name));
        Assert.Equal(Enumerable.Range(0, partials.Count), partials.Select(p => p.Data.GetProperty("partial_image_index").GetInt32()));
        Assert.Equal($"{prefix}.completed", events[^1].Name);
        return partials;
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpeg")]
    [InlineData("webp")]
    public async Task StreamedGenerationsCarryEverySdkFieldInTheRequestedFormat(string format)
    {
        var events = await Stream(Json($$"""{"prompt": "a fox in snow", "size": "64x64", "stream": true, "partial_images": 2, "output_format": "{{format}}"}"""), "/v1/images/generations");
        var partials = AssertPartialsThenOneCompleted(events, "image_generation", 2);
        foreach (var partial in partials) AssertEvent(partial, "image_generation.partial_image", PartialImageFields, format);
        var final = AssertEvent(events[^1], "image_generation.completed", CompletedFields, format);
        Assert.Equal(64, ImageCodec.Decode(final, "final").Width);
        var usage = events[^1].Data.GetProperty("usage");
        Assert.Equal(["input_tokens", "input_tokens_details", "output_tokens", "total_tokens"], usage.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(["image_tokens", "text_tokens"], usage.GetProperty("input_tokens_details").EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(4, usage.GetProperty("input_tokens_details").GetProperty("text_tokens").GetInt32()); // a, fox, in, snow: one CLIP token each
        Assert.Equal(usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("output_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task StreamedEditsUseTheImageEditEventsAndHonourCompression()
    {
        async Task<List<ServerSentEvent>> Edit(int compression) => await Stream(EditForm(("prompt", "make it snowy"), ("size", "64x64"), ("stream", "true"),
            ("partial_images", "3"), ("output_format", "jpeg"), ("output_compression", compression.ToString())), "/v1/images/edits");
        var low = await Edit(5);
        var high = await Edit(100);
        foreach (var events in new[] { low, high })
        {
            foreach (var partial in AssertPartialsThenOneCompleted(events, "image_edit", 3)) AssertEvent(partial, "image_edit.partial_image", PartialImageFields, "jpeg");
            AssertEvent(events[^1], "image_edit.completed", CompletedFields, "jpeg");
        }
        int Size(ServerSentEvent e) => Convert.FromBase64String(e.Data.GetProperty("b64_json").GetString()!).Length;
        Assert.True(Size(low[0]) < Size(high[0]), $"first partial: compression 5 gave {Size(low[0])} bytes, 100 gave {Size(high[0])}");
        Assert.True(Size(low[^1]) * 2 < Size(high[^1]), $"final: compression 5 gave {Size(low[^1])} bytes, 100 gave {Size(high[^1])}");
    }

    [Fact]
    public async Task PlainResponsesCarryTheImagesMetadata()
    {
        var res = await Http.PostAsync("/v1/images/generations", Json("""{"prompt": "a fox", "model": "gpt-image-1", "size": "64x64", "output_format": "webp", "output_compression": 40}"""));
        var body = await res.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("webp", body.GetProperty("output_format").GetString());
        Assert.Equal("64x64", body.GetProperty("size").GetString());
        Assert.Equal("opaque", body.GetProperty("background").GetString());
        Assert.Equal(2, body.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal("webp", ImageMagic.FormatOf(Convert.FromBase64String(body.GetProperty("data")[0].GetProperty("b64_json").GetString()!)));
    }

    [Theory]
    [InlineData("""{"model": "dall-e-3", "size": "64x64"}""", "url")]
    [InlineData("""{"model": "gpt-image-1-mini", "size": "64x64"}""", "b64_json")]
    [InlineData("""{"model": "chatgpt-image-latest", "size": "64x64"}""", "b64_json")]
    [InlineData("""{"model": "tiny", "size": "64x64"}""", "url")]
    [InlineData("""{"size": "64x64"}""", "url")]
    [InlineData("""{"model": "dall-e-2", "size": "64x64", "response_format": "b64_json"}""", "b64_json")]
    public async Task TheResponseFormatDefaultsByModelFamily(string fields, string expected)
    {
        var res = await Http.PostAsync("/v1/images/generations", Json("""{"prompt": "a fox", """ + fields[1..]));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        var image = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0];
        Assert.Equal([expected, "revised_prompt"], image.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task EditsWithAGptImageModelAnswerInBase64AndRefuseAResponseFormat()
    {
        var res = await Http.PostAsync("/v1/images/edits", EditForm(("prompt", "make it snowy"), ("size", "64x64"), ("model", "gpt-image-1")));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.True((await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("data")[0].TryGetProperty("b64_json", out _));

        var refused = await Http.PostAsync("/v1/images/edits", EditForm(("prompt", "make it snowy"), ("model", "gpt-image-1"), ("response_format", "b64_json")));
        var error = await AssertOpenAiError(refused, "response_format", "unknown_parameter");
        Assert.Contains("Unknown parameter: 'response_format'", error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("""{"size": "64x64"}""", "missing_required_parameter")]
    [InlineData("""{"prompt": null}""", "missing_required_parameter")]
    [InlineData("""{"prompt": ""}""", "empty_string")]
    [InlineData("""{"prompt": "  \n "}""", "empty_string")]
    public async Task GenerationsRefuseAMissingOrEmptyPrompt(string body, string code)
    {
        var error = await AssertOpenAiError(await Http.PostAsync("/v1/images/generations", Json(body)), "prompt", code);
        Assert.Contains("prompt is", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task EditsRefuseAMissingOrEmptyPrompt()
    {
        await AssertOpenAiError(await Http.PostAsync("/v1/images/edits", EditForm()), "prompt", "missing_required_parameter");
        await AssertOpenAiError(await Http.PostAsync("/v1/images/edits", EditForm(("prompt", ""))), "prompt", "empty_string");
        await AssertOpenAiError(await Http.PostAsync("/v1/images/edits", EditForm(("prompt", " "), ("stream", "true"))), "prompt", "empty_string");
    }

    [Theory]
    [InlineData("""{"prompt": "x", "output_compression": 101}""", "output_compression", "output_compression is 101; expected 0 to 100")]
    [InlineData("""{"prompt": "x", "output_compression": -1}""", "output_compression", "expected 0 to 100")]
    [InlineData("""{"prompt": "x", "output_format": "gif"}""", "output_format", "not png, jpeg or webp")]
    public async Task OutputOptionsOutOfRangeAreA400NamingTheField(string body, string param, string message)
    {
        var error = await AssertOpenAiError(await Http.PostAsync("/v1/images/generations", Json(body)), param, null);
        Assert.Contains(message, error.GetProperty("message").GetString());
    }

    private static async Task<JsonElement> AssertOpenAiError(HttpResponseMessage res, string param, string? code)
    {
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        var error = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(["code", "message", "param", "type"], error.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
        return error;
    }
}

/// <summary>Which of the formats OpenAI returns some bytes are, by their signature.</summary>
internal static class ImageMagic
{
    public static string FormatOf(byte[] bytes) =>
        bytes.Length > 12 && bytes[0] == 137 && bytes[1] == (byte)'P' ? "png"
        : bytes.Length > 12 && bytes[0] == 0xFF && bytes[1] == 0xD8 ? "jpeg"
        : bytes.Length > 12 && Encoding.ASCII.GetString(bytes, 0, 4) == "RIFF" && Encoding.ASCII.GetString(bytes, 8, 4) == "WEBP" ? "webp"
        : "unknown";
}
