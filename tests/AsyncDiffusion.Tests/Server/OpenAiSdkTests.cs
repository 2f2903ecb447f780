using System.ClientModel;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Pipelines;
using OpenAI;
using OpenAI.Images;

namespace AsyncDiffusion.Tests.Server;

/// <summary>The official OpenAI .NET SDK, a client we did not write, pointed at the server.</summary>
public sealed class OpenAiSdkTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private ImageClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _client = new ImageClient("dall-e-2", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task GeneratesAsBytes()
    {
        var result = await _client.GenerateImageAsync("a lighthouse at dawn", new ImageGenerationOptions
        {
            ResponseFormat = GeneratedImageFormat.Bytes,
            Size = new GeneratedImageSize(64, 64),
        });
        var bytes = result.Value.ImageBytes.ToArray();
        Assert.Equal(137, bytes[0]);
        Assert.StartsWith("a lighthouse at dawn", PngText.Read(bytes)["parameters"]);
    }

    [Fact]
    public async Task GeneratesAsUrlAndTheUrlServesTheImage()
    {
        var result = await _client.GenerateImageAsync("a lighthouse at dawn", new ImageGenerationOptions
        {
            ResponseFormat = GeneratedImageFormat.Uri,
            Size = new GeneratedImageSize(64, 64),
        });
        var bytes = await _server.Client.GetByteArrayAsync(result.Value.ImageUri);
        Assert.Equal(137, bytes[0]);
    }

    [Fact]
    public async Task EditsAnImage()
    {
        using var image = new MemoryStream(ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));
        var result = await _client.GenerateImageEditAsync(image, "init.png", "make it snowy", new ImageEditOptions
        {
            ResponseFormat = GeneratedImageFormat.Bytes,
            Size = new GeneratedImageSize(64, 64),
        });
        Assert.Contains("Denoising strength", PngText.Read(result.Value.ImageBytes.ToArray())["parameters"]);
    }

    [Fact]
    public async Task GptImageModelsAnswerInBase64WithoutBeingAsked()
    {
        var gpt = new ImageClient("gpt-image-1", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
        var result = await gpt.GenerateImageAsync("a lighthouse at dawn", new ImageGenerationOptions { Size = new GeneratedImageSize(64, 64) });
        Assert.Null(result.Value.ImageUri);
        Assert.Equal(137, result.Value.ImageBytes.ToArray()[0]);
    }

    [Fact]
    public async Task GptImageModelsRefuseAResponseFormatAsOpenAiDoes()
    {
        var gpt = new ImageClient("gpt-image-1.5", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => gpt.GenerateImageAsync("x", new ImageGenerationOptions
        {
            ResponseFormat = GeneratedImageFormat.Uri,
            Size = new GeneratedImageSize(64, 64),
        }));
        Assert.Equal(400, e.Status);
        Assert.Contains("Unknown parameter: 'response_format'", e.Message);
    }

    [Fact]
    public async Task DallEModelsDefaultToAUrl()
    {
        var result = await _client.GenerateImageAsync("a lighthouse at dawn", new ImageGenerationOptions { Size = new GeneratedImageSize(64, 64) });
        Assert.Null(result.Value.ImageBytes);
        Assert.Equal(137, (await _server.Client.GetByteArrayAsync(result.Value.ImageUri))[0]);
    }

    // The SDK marks output_format and output_compression as experimental (OPENAI001).
#pragma warning disable OPENAI001
    [Theory]
    [InlineData("jpeg")]
    [InlineData("webp")]
    public async Task OutputFormatAndCompressionShapeTheImage(string format)
    {
        var gpt = new ImageClient("gpt-image-1", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
        async Task<byte[]> Generate(int compression) => (await gpt.GenerateImageAsync("a lighthouse at dawn", new ImageGenerationOptions
        {
            Size = new GeneratedImageSize(128, 128),
            OutputFileFormat = new GeneratedImageFileFormat(format),
            OutputCompressionFactor = compression,
        })).Value.ImageBytes.ToArray();
        byte[] small = await Generate(5), large = await Generate(100);
        foreach (var bytes in new[] { small, large })
        {
            Assert.Equal(format, ImageMagic.FormatOf(bytes));
            Assert.Equal(128, ImageCodec.Decode(bytes, "result").Width);
        }
        Assert.True(small.Length * 2 < large.Length, $"compression 5 gave {small.Length} bytes, 100 gave {large.Length}");
    }
#pragma warning restore OPENAI001

    [Fact]
    public async Task ErrorsArriveAsSdkExceptionsWithTheServersMessage()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => _client.GenerateImageAsync("x", new ImageGenerationOptions { Size = new GeneratedImageSize(7, 7) }));
        Assert.Equal(400, e.Status);
        Assert.Contains("width is 7", e.Message);
    }
}
