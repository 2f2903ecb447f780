using AsyncDiffusion.Imaging;

namespace AsyncDiffusion.Tests.Imaging;

/// <summary>
/// Computing only part of a resize (what a crop keeps) gives exactly the bytes of the full
/// resize there, so bounding the work costs nothing in Pillow/A1111 exactness.
/// </summary>
public sealed class ResizeWindowTests
{
    private static byte[] Noise(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void AnyWindowOfAResizeIsExactlyThoseBytesOfTheFullResize()
    {
        var random = new Random(11);
        for (int n = 0; n < 200; n++)
        {
            int width = random.Next(1, 40), height = random.Next(1, 40), channels = random.Next(2) == 0 ? 1 : 3;
            int newWidth = random.Next(1, 60), newHeight = random.Next(1, 60);
            var filter = random.Next(2) == 0 ? ResampleFilter.Lanczos : ResampleFilter.Bicubic;
            var pixels = Noise(random, width * height * channels);
            var full = PillowResampling.Resize(pixels, width, height, channels, newWidth, newHeight, filter);
            int left = random.Next(newWidth), top = random.Next(newHeight);
            var window = new PillowResampling.OutputWindow(left, top, random.Next(1, newWidth - left + 1), random.Next(1, newHeight - top + 1));
            var part = PillowResampling.ResizeWindow(pixels, width, height, channels, newWidth, newHeight, filter, window);
            var expected = A1111ImageResize.Crop(full, newWidth, channels, (left, top, left + window.Width, top + window.Height));
            Assert.True(expected.AsSpan().SequenceEqual(part),
                $"case {n}: {width}x{height}x{channels} → {newWidth}x{newHeight} ({filter}), window {window}");
        }
    }

    [Fact]
    public void CropAndResizeEqualsScalingTheWholeImageThenCroppingTheCentre()
    {
        var random = new Random(5);
        for (int n = 0; n < 150; n++)
        {
            // Aspect ratios from 1:60 to 60:1, up- and downscales.
            int width = random.Next(1, 120), height = random.Next(1, 120), channels = random.Next(2) == 0 ? 1 : 3;
            if (n % 5 == 0) (width, height) = (random.Next(100, 600), random.Next(1, 10));
            if (n % 5 == 1) (width, height) = (random.Next(1, 10), random.Next(100, 600));
            int targetWidth = random.Next(1, 80), targetHeight = random.Next(1, 80);
            var pixels = Noise(random, width * height * channels);
            var actual = A1111ImageResize.Resize(pixels, width, height, channels, targetWidth, targetHeight, ResizeMode.CropAndResize);
            Assert.True(ScaleWholeThenCrop(pixels, width, height, channels, targetWidth, targetHeight).AsSpan().SequenceEqual(actual),
                $"case {n}: {width}x{height}x{channels} → {targetWidth}x{targetHeight}");
        }
    }

    [Fact]
    public void AStripThatWouldScaleBeyondAnArrayIsCroppedFromTheKeptPartOnly()
    {
        // 4,000,000 × 1 covering 1024 × 1024 scales to 4,096,000,000 × 1024: wider than any array.
        var strip = RgbImage.Create(4_000_000, 1);
        for (int x = 1_999_900; x < 2_000_100; x++) strip.Pixels[x * 3] = 200;
        var square = ImageCodec.ResizeAndCrop(strip, 1024, 1024);
        Assert.Equal((1024, 1024), (square.Width, square.Height));
        Assert.All(Enumerable.Range(0, 1024), y => Assert.Equal(200, square.Pixels[(y * 1024 + 512) * 3]));
    }

    // A1111's resize_image for "crop and resize" as written: Lanczos to cover the target, then paste centred.
    private static byte[] ScaleWholeThenCrop(byte[] pixels, int width, int height, int channels, int targetWidth, int targetHeight)
    {
        double ratio = (double)targetWidth / targetHeight, sourceRatio = (double)width / height;
        int scaledWidth = ratio > sourceRatio ? targetWidth : width * targetHeight / height;
        int scaledHeight = ratio > sourceRatio ? height * targetWidth / width : targetHeight;
        var scaled = PillowResampling.Resize(pixels, width, height, channels, scaledWidth, scaledHeight, ResampleFilter.Lanczos);
        int left = scaledWidth / 2 - targetWidth / 2, top = scaledHeight / 2 - targetHeight / 2;
        return A1111ImageResize.Crop(scaled, scaledWidth, channels, (left, top, left + targetWidth, top + targetHeight));
    }
}
