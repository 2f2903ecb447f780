using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace AsyncDiffusion.Tests.Server;

/// <summary>JSON bodies that parse but cannot be used: bad text, duplicate keys, deep nesting. All are 400s before any work, on every JSON route.</summary>
public sealed class JsonHardeningTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    public static readonly TheoryData<string> JsonRoutes = new()
    {
        "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/options", "/sdapi/v1/png-info", "/v1/images/generations", "/api/v1/jobs",
    };

    private static ByteArrayContent Raw(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private async Task<(int Status, string Body)> Post(string route, byte[] body)
    {
        var res = await Http.PostAsync(route, Raw(body));
        string text = await res.Content.ReadAsStringAsync();
        return ((int)res.StatusCode, text);
    }

    private static void AssertCompleteJson(string body) => JsonDocument.Parse(body).Dispose();

    [Theory]
    [MemberData(nameof(JsonRoutes))]
    public async Task ALoneSurrogateInAnyStringIsA400NamingTheField(string route)
    {
        var (status, body) = await Post(route, Encoding.ASCII.GetBytes("""{"prompt": "a \ud800 b", "steps": 2}"""));
        Assert.Equal(400, status);
        Assert.Contains("prompt", body);
        Assert.Contains("not valid Unicode", body);
        AssertCompleteJson(body);

        (status, body) = await Post(route, Encoding.ASCII.GetBytes("""{"prompt": "x", "steps": 2, "unused": {"deeper": ["\udc00"]}}"""));
        Assert.Equal(400, status);
        Assert.Contains("unused.deeper[0]", body);
    }

    [Theory]
    [MemberData(nameof(JsonRoutes))]
    public async Task InvalidUtf8IsA400(string route)
    {
        byte[] body = [.. "{\"prompt\": \"a "u8, 0xC3, 0x28, 0xFF, .. "\", \"steps\": 2}"u8];
        var (status, text) = await Post(route, body);
        Assert.Equal(400, status);
        AssertCompleteJson(text);

        byte[] key = [.. "{\"pr"u8, 0xED, 0xA0, 0x80, .. "\": 1}"u8]; // an encoded surrogate in a key
        (status, text) = await Post(route, key);
        Assert.Equal(400, status);
        AssertCompleteJson(text);
    }

    [Theory]
    [MemberData(nameof(JsonRoutes))]
    public async Task ADuplicateKeyIsA400(string route)
    {
        var (status, body) = await Post(route, Encoding.UTF8.GetBytes("""{"prompt": "x", "steps": 2, "prompt": "y"}"""));
        Assert.Equal(400, status);
        Assert.Contains("prompt appears twice", body);
    }

    [Theory]
    [MemberData(nameof(JsonRoutes))]
    public async Task DeepNestingIsA400EvenInAnUnusedField(string route)
    {
        foreach (int depth in new[] { 40, 63, 200, 5000 })
        {
            string nested = new string('[', depth) + new string(']', depth);
            var (status, body) = await Post(route, Encoding.UTF8.GetBytes($$"""{"prompt": "x", "steps": 2, "unused": {{nested}}}"""));
            Assert.Equal(400, status);
            Assert.Contains("nests deeper", body);
            AssertCompleteJson(body);
        }
    }

    [Fact]
    public async Task A1111EchoesWhatItParsedInAComplete200()
    {
        // 31 levels is within the limit; the echo adds two around it, still a complete document.
        string nested = new string('[', 30) + "1" + new string(']', 30);
        var res = await Http.PostAsync("/sdapi/v1/txt2img", Raw(Encoding.UTF8.GetBytes($$"""{"prompt": "é \u00e9 😀", "steps": 2, "extra": {{nested}}, "init_images": ["x"]}""")));
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync());
        var parameters = doc.RootElement.GetProperty("parameters");
        Assert.Equal("é é 😀", parameters.GetProperty("prompt").GetString());
        Assert.Equal(JsonValueKind.Array, parameters.GetProperty("extra").ValueKind);
        Assert.Equal(0, parameters.GetProperty("init_images").GetArrayLength());
        Assert.Equal(res.Content.Headers.ContentLength, (await res.Content.ReadAsByteArrayAsync()).Length);
    }
}
