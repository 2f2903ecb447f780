using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Pipelines;
using OpenAI;
using OpenAI.Images;
using SkiaSharp;

namespace AsyncDiffusion.Tests.Server;

/// <summary>Masks through the three APIs: A1111's img2img fields, OpenAI's edits (official SDK) and the native jobs API.</summary>
public sealed class InpaintingServerTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient Http => _server.Client;
    private static readonly RgbImage Init = PipelineMathTests.InitImage();

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
    private static string Png(RgbImage image) => Convert.ToBase64String(ImageCodec.Encode(image, ImageFormat.Png));

    /// <summary>An RGBA PNG (ImageCodec writes opaque images only).</summary>
    internal static byte[] RgbaPng(RgbaImage image)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        image.Pixels.CopyTo(bitmap.GetPixelSpan());
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>White on the left <paramref name="columns"/> columns, black elsewhere (A1111's convention).</summary>
    private static RgbImage WhiteLeft(int columns)
    {
        var mask = RgbImage.Create(64, 64);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < columns; x++)
                for (int c = 0; c < 3; c++) mask.Pixels[(y * 64 + x) * 3 + c] = 255;
        return mask;
    }

    private static void AssertColumnsUnchanged(RgbImage result, int from)
    {
        for (int y = 0; y < 64; y++)
            for (int x = from; x < 64; x++)
                for (int c = 0; c < 3; c++)
                    Assert.True(Init.Pixels[(y * 64 + x) * 3 + c] == result.Pixels[(y * 64 + x) * 3 + c], $"pixel ({x}, {y}) changed outside the mask");
    }

    private async Task<(RgbImage Image, string Infotext, JsonElement Parameters)> Img2Img(string body)
    {
        var res = await Http.PostAsync("/sdapi/v1/img2img", Json(body));
        string text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var png = Convert.FromBase64String(doc.RootElement.GetProperty("images")[0].GetString()!);
        return (ImageCodec.Decode(png, "result"), PngText.Read(png)["parameters"], doc.RootElement.GetProperty("parameters").Clone());
    }

    [Fact]
    public async Task A1111InpaintingWithEveryMaskField()
    {
        // The fields as A1111 clients send them, some as strings and 0/1 the way lenient clients do.
        var (image, info, parameters) = await Img2Img($$"""
            {"prompt": "a red fox", "negative_prompt": "blurry", "init_images": ["data:image/png;base64,{{Png(Init)}}"],
             "mask": "data:image/png;base64,{{Png(WhiteLeft(32))}}", "mask_blur": "4", "inpainting_fill": 1, "inpaint_full_res": false,
             "inpaint_full_res_padding": 32, "inpainting_mask_invert": 0, "mask_round": true, "initial_noise_multiplier": 0.95,
             "denoising_strength": 0.75, "steps": 4, "width": 64, "height": 64, "cfg_scale": 7, "sampler_name": "Euler a", "seed": 5, "batch_size": 1}
            """);
        AssertColumnsUnchanged(image, 42); // mask edge 32 + the blur's 10 px reach
        Assert.Contains("Denoising strength: 0.75", info);
        Assert.Contains("Mask blur: 4", info);
        Assert.Contains("Noise multiplier: 0.95", info);
        Assert.DoesNotContain("Inpaint area", info);
        Assert.Equal(JsonValueKind.Null, parameters.GetProperty("mask").ValueKind); // not echoed back
    }

    [Fact]
    public async Task A1111DefaultsAreItsApiDefaultsOnlyMaskedAndFill()
    {
        var (image, info, _) = await Img2Img($$"""
            {"prompt": "x", "init_images": ["{{Png(Init)}}"], "mask": "{{Png(WhiteLeft(16))}}", "steps": 3, "width": 64, "height": 64, "seed": 1}
            """);
        Assert.Contains("Mask blur: 4, Inpaint area: Only masked, Masked area padding: 0, Masked content: fill", info);
        AssertColumnsUnchanged(image, 16 + 10);
    }

    [Fact]
    public async Task A1111InvertXYBlurAndAnAlphaMask()
    {
        // A mask with transparency is read by its alpha (opaque = repaint): here the left half, whatever its colour.
        var rgba = RgbaImage.Create(64, 64);
        for (int i = 0; i < 64 * 64; i++)
        {
            rgba.Pixels[i * 4] = rgba.Pixels[i * 4 + 1] = rgba.Pixels[i * 4 + 2] = 255;
            rgba.Pixels[i * 4 + 3] = (byte)(i % 64 < 32 ? 255 : 0);
        }
        var (image, info, _) = await Img2Img($$"""
            {"prompt": "x", "init_images": ["{{Png(Init)}}"], "mask": "{{Convert.ToBase64String(RgbaPng(rgba))}}", "mask_blur_x": 0, "mask_blur_y": 2,
             "inpaint_full_res": 0, "inpainting_mask_invert": 1, "steps": 3, "width": 64, "height": 64, "seed": 1}
            """);
        Assert.Contains("Mask mode: Inpaint not masked", info);
        Assert.DoesNotContain("Mask blur", info); // A1111 writes it only when x and y agree
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) Assert.Equal(Init.Pixels[(y * 64 + x) * 3 + c], image.Pixels[(y * 64 + x) * 3 + c]);
    }

    [Theory]
    [InlineData("\"mask\": \"aGVsbG8gd29ybGQ=\"", "'mask' is not a readable image")]
    [InlineData("\"mask\": \"%%%\"", "mask is not valid base64")]
    [InlineData("\"mask\": \"{MASK}\", \"inpainting_fill\": 7", "inpainting_fill is 7")]
    [InlineData("\"mask\": \"{MASK}\", \"mask_blur\": 500", "mask_blur is 500")]
    public async Task BadMaskFieldsAre400sNamingTheField(string fields, string message)
    {
        fields = fields.Replace("{MASK}", Png(WhiteLeft(8)));
        var res = await Http.PostAsync("/sdapi/v1/img2img", Json($$"""{"prompt": "x", "steps": 2, "init_images": ["{{Png(Init)}}"], {{fields}}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains(message, await res.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task OpenAiSdkEditWithAMaskRepaintsOnlyTheTransparentPixels()
    {
        var client = new ImageClient("dall-e-2", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_server.BaseAddress, "/v1") });
        var mask = RgbaImage.Create(64, 64);
        for (int i = 0; i < 64 * 64; i++) mask.Pixels[i * 4 + 3] = (byte)(i % 64 < 20 ? 0 : 255); // transparent: edit here
        using var image = new MemoryStream(ImageCodec.Encode(Init, ImageFormat.Png));
        using var maskStream = new MemoryStream(RgbaPng(mask));
        var result = await client.GenerateImageEditAsync(image, "init.png", "make it snowy", maskStream, "mask.png", new ImageEditOptions
        {
            ResponseFormat = GeneratedImageFormat.Bytes,
            Size = new GeneratedImageSize(64, 64),
        });
        var bytes = result.Value.ImageBytes.ToArray();
        var edited = ImageCodec.Decode(bytes, "edited");
        AssertColumnsUnchanged(edited, 20);
        Assert.NotEqual(Init.Pixels, edited.Pixels);
        Assert.Contains("Denoising strength: 1", PngText.Read(bytes)["parameters"]);

        // A mask of another size, or not a PNG, is refused with OpenAI's error shape.
        using var image2 = new MemoryStream(ImageCodec.Encode(Init, ImageFormat.Png));
        using var small = new MemoryStream(RgbaPng(RgbaImage.Create(32, 32)));
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.GenerateImageEditAsync(image2, "init.png", "x", small, "mask.png"));
        Assert.Equal(400, e.Status);
        Assert.Contains("same dimensions", e.Message);
        using var image3 = new MemoryStream(ImageCodec.Encode(Init, ImageFormat.Png));
        using var jpeg = new MemoryStream(ImageCodec.Encode(Init, ImageFormat.Jpeg));
        e = await Assert.ThrowsAsync<ClientResultException>(() => client.GenerateImageEditAsync(image3, "init.png", "x", jpeg, "mask.jpg"));
        Assert.Contains("mask must be a PNG", e.Message);
    }

    [Fact]
    public async Task NativeJobsTakeTheMaskFields()
    {
        var res = await Http.PostAsync("/api/v1/jobs", Json($$"""
            {"prompt": "a boat", "steps": 3, "seed": 2, "init_image": "{{Png(Init)}}", "mask": "{{Png(WhiteLeft(24))}}", "mask_blur": 0,
             "masked_content": "latent_noise", "width": 64, "height": 64}
            """));
        Assert.Equal(HttpStatusCode.Accepted, res.StatusCode);
        string id = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await Http.GetStringAsync($"/api/v1/jobs/{id}/events"); // ends when the job does
        var job = await Http.GetFromJsonAsync<JsonElement>($"/api/v1/jobs/{id}");
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        var png = await Http.GetByteArrayAsync(job.GetProperty("images")[0].GetProperty("url").GetString());
        AssertColumnsUnchanged(ImageCodec.Decode(png, "result"), 24);
        Assert.Contains("Masked content: latent noise", PngText.Read(png)["parameters"]);

        var bad = await Http.PostAsync("/api/v1/jobs", Json($$"""{"prompt": "x", "init_image": "{{Png(Init)}}", "mask": "{{Png(WhiteLeft(8))}}", "masked_content": "sand"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("masked_content 'sand'", await bad.Content.ReadAsStringAsync());
        var noInit = await Http.PostAsync("/api/v1/jobs", Json($$"""{"prompt": "x", "mask": "{{Png(WhiteLeft(8))}}"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, noInit.StatusCode);
        Assert.Contains("a mask needs an init image", await noInit.Content.ReadAsStringAsync());
    }
}
