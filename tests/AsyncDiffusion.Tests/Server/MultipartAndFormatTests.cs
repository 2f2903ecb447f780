using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Broken multipart bodies, PNG chunk lengths near 2^31, and integers past 2^32: 400s, never 500s or wrapped values.</summary>
public sealed class MultipartAndFormatTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static ByteArrayContent Body(string contentType, byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return content;
    }

    [Theory]
    [InlineData("/v1/images/edits")]
    [InlineData("/v1/images/variations")]
    public async Task TruncatedOrNonMultipartBodiesAre400s(string route)
    {
        var png = ImageCodec.Encode(RgbImage.Create(64, 64), ImageFormat.Png);
        byte[] whole = [.. Encoding.ASCII.GetBytes("--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nsnow\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"),
            .. png, .. Encoding.ASCII.GetBytes("\r\n--XyZ--\r\n")];
        var bodies = new (string Type, byte[] Bytes)[]
        {
            ("multipart/form-data; boundary=XyZ", whole[..(whole.Length / 2)]),                  // cut mid-file
            ("multipart/form-data; boundary=XyZ", whole[..40]),                                  // cut mid-headers
            ("multipart/form-data; boundary=XyZ", Encoding.UTF8.GetBytes("{\"prompt\": \"x\"}")), // JSON sent as multipart
            ("multipart/form-data", whole),                                                      // no boundary
            ("multipart/form-data; boundary=XyZ", []),
        };
        foreach (var (type, bytes) in bodies)
        {
            var res = await Http.PostAsync(route, Body(type, bytes));
            string text = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, $"{type}, {bytes.Length} bytes: {(int)res.StatusCode} {text}");
            Assert.True(JsonDocument.Parse(text).RootElement.TryGetProperty("error", out _));
        }
        var json = await Http.PostAsync(route, Body("application/json", Encoding.UTF8.GetBytes("{\"prompt\": \"x\"}")));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
    }

    [Theory]
    [InlineData(0x7FFFFFF0u)]
    [InlineData(0x7FFFFFFFu)]
    [InlineData(0xFFFFFFF0u)]
    public async Task PngInfoRefusesChunkLengthsNear2To31(uint length)
    {
        var png = ImageCodec.Encode(RgbImage.Create(4, 4), ImageFormat.Png, "a prompt\nSteps: 2");
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(8 + 25), length); // the text chunk after IHDR
        var res = await Http.PostAsync("/sdapi/v1/png-info", new StringContent(JsonSerializer.Serialize(new { image = Convert.ToBase64String(png) }), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains("broken PNG", await res.Content.ReadAsStringAsync());
        Assert.Empty(PngText.Read(png)); // the lenient reader stops there instead of overflowing
    }

    [Theory]
    [InlineData("4294967297")]
    [InlineData("-4294967295")]
    [InlineData("1e300")]
    public async Task OpenAiNPastInt32IsA400NotAWrappedOne(string n)
    {
        var res = await Http.PostAsync("/v1/images/generations", new StringContent($$"""{"prompt": "x", "size": "64x64", "n": {{n}}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Equal("n", JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());

        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(ImageCodec.Encode(RgbImage.Create(64, 64), ImageFormat.Png)), "image", "a.png" },
            { new StringContent(n), "n" },
        };
        var variation = await Http.PostAsync("/v1/images/variations", form);
        Assert.Equal(HttpStatusCode.BadRequest, variation.StatusCode);
    }
}
