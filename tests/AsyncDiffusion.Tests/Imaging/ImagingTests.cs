using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Imaging;

public class ImagingTests
{
    [Theory]
    [InlineData(-1f, false, 0)]
    [InlineData(1f, false, 255)]
    [InlineData(3f, false, 255)]
    [InlineData(float.NaN, false, 0)]
    [InlineData(0f, false, 128)]                // 0.5 · 255 = 127.5 → 128 (half to even)
    [InlineData(0.00784313678741455f, false, 128)] // 128.5 → 128 (half to even)
    [InlineData(-0.00784313678741455f, false, 126)] // 126.5 → 126
    [InlineData(0.5f, true, 128)]
    [InlineData(1.2f, true, 255)]
    public void DecoderOutputMapsToBytesAsDiffusers(float x, bool zeroToOne, byte expected) =>
        Assert.Equal(expected, LatentImageConversion.ToByte(x, zeroToOne));

    [Fact]
    public void EncoderInputIsMinusOneToOne()
    {
        var image = new RgbImage(1, 1, [0, 255, 51]);
        var t = new float[3];
        LatentImageConversion.ToTensor(image, t);
        Assert.Equal(new[] { -1f, 1f, 2f * 0.2f - 1f }, t);
    }

    [Fact]
    public void PngCarriesTheInfotextAndReadsBack()
    {
        var image = RgbImage.Create(16, 8);
        for (int i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 7);
        string info = Infotext.Format("a cat, \"quoted\"", "blurry", [new("Steps", "20"), new("Sampler", "DPM++ 2M Karras"), new("CFG scale", "7.5"), new("Seed", "42"), new("Size", "16x8")]);
        var png = ImageCodec.Encode(image, ImageFormat.Png, info);
        Assert.Equal(info, PngText.Read(png)["parameters"]);
        var decoded = ImageCodec.Decode(png, "test.png");
        Assert.Equal(image.Pixels, decoded.Pixels);

        var (prompt, negative, parameters) = Infotext.Parse(info);
        Assert.Equal("a cat, \"quoted\"", prompt);
        Assert.Equal("blurry", negative);
        Assert.Equal("DPM++ 2M Karras", parameters["Sampler"]);
        Assert.Equal("42", parameters["Seed"]);
    }

    [Fact]
    public void NonLatinInfotextUsesAnInternationalChunk()
    {
        var png = ImageCodec.Encode(RgbImage.Create(4, 4), ImageFormat.Png, "宇航员骑马\nSteps: 1");
        Assert.Equal("宇航员骑马\nSteps: 1", PngText.Read(png)["parameters"]);
    }

    [Fact]
    public void ResizeAndCropCoversTheTargetAndKeepsTheCentre()
    {
        var wide = RgbImage.Create(200, 100);
        for (int y = 0; y < 100; y++)
            for (int x = 0; x < 200; x++)
                wide.Pixels[(y * 200 + x) * 3] = (byte)(x >= 50 && x < 150 ? 200 : 10);
        var square = ImageCodec.ResizeAndCrop(wide, 64, 64);
        Assert.Equal(64, square.Width);
        Assert.Equal(64, square.Height);
        Assert.All(Enumerable.Range(0, 64 * 64).Where(i => i % 64 is > 2 and < 61), i => Assert.InRange(square.Pixels[i * 3], 150, 255));
    }

    [Fact]
    public void NonImageBytesAreAClearError()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode("not an image at all"u8.ToArray(), "upload.png"));
        Assert.Contains("'upload.png' is not a readable image", e.Message);
    }

    [Fact]
    public void ImagesOverThePixelLimitAreRejectedBeforeDecoding()
    {
        var png = ImageCodec.Encode(RgbImage.Create(300, 300), ImageFormat.Png);
        var e = Assert.Throws<AsyncDiffusionException>(() => ImageCodec.Decode(png, "big.png", maxPixels: 50_000));
        Assert.Contains("300×300", e.Message);
    }

    [Theory]
    [InlineData(ImageFormat.Jpeg, new byte[] { 0xFF, 0xD8 })]
    [InlineData(ImageFormat.Webp, new byte[] { (byte)'R', (byte)'I', (byte)'F', (byte)'F' })]
    public void OtherFormatsEncode(ImageFormat format, byte[] magic)
    {
        var bytes = ImageCodec.Encode(RgbImage.Create(32, 32), format);
        Assert.Equal(magic, bytes.Take(magic.Length));
    }
}
