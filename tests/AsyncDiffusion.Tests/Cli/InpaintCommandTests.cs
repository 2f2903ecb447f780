using System.Text.Json;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Tests.Models;
using AsyncDiffusion.Tests.Pipelines;

namespace AsyncDiffusion.Tests.Cli;

public class InpaintCommandTests
{
    private static (string Init, string Mask) WriteInputs(TempFolder dir)
    {
        string init = Path.Combine(dir.Path, "init.png"), mask = Path.Combine(dir.Path, "mask.png");
        File.WriteAllBytes(init, ImageCodec.Encode(PipelineMathTests.InitImage(), ImageFormat.Png));
        var white = RgbImage.Create(64, 64);
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) white.Pixels[(y * 64 + x) * 3 + c] = 255;
        File.WriteAllBytes(mask, ImageCodec.Encode(white, ImageFormat.Png));
        return (init, mask);
    }

    [Fact]
    public void InpaintingFromTheCommandLineKeepsTheUnmaskedPixels()
    {
        using var dir = new TempFolder();
        var (init, mask) = WriteInputs(dir);
        var (code, output, error) = CliRun.Run("generate", "a fox", "--model", TinyModels.Folder(), "--init-image", init, "--mask", mask, "--mask-blur", "0",
            "--steps", "3", "--seed", "4", "--out", Path.Combine(dir.Path, "out"), "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        var result = ImageCodec.Decode(doc.RootElement.GetProperty("images")[0].GetProperty("file").GetString()!);
        var original = PipelineMathTests.InitImage();
        for (int y = 0; y < 64; y++)
            for (int x = 32; x < 64; x++)
                for (int c = 0; c < 3; c++) Assert.Equal(original.Pixels[(y * 64 + x) * 3 + c], result.Pixels[(y * 64 + x) * 3 + c]);

        (code, output, error) = CliRun.Run("generate", "a fox", "--model", TinyModels.Folder(), "--init-image", init, "--mask", mask, "--invert-mask",
            "--inpaint-full-res", "--padding", "8", "--masked-content", "latent-nothing", "--steps", "3", "--out", Path.Combine(dir.Path, "out"), "--json");
        Assert.True(code == 0, error);
        Assert.Contains("Mask mode: Inpaint not masked, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 8, Masked content: latent nothing", output);
    }

    [Theory]
    [InlineData("not-an-image", "--mask: '")]
    [InlineData("no-init", "a mask needs an init image")]
    [InlineData("bad-content", "--masked-content 'sand'")]
    [InlineData("bad-blur", "mask blur is 99")]
    public void BadMaskInputExitsWith2AndWritesNothing(string what, string message)
    {
        using var dir = new TempFolder();
        var (init, mask) = WriteInputs(dir);
        string outDir = Path.Combine(dir.Path, "out");
        string[] args = what switch
        {
            "not-an-image" => ["--init-image", init, "--mask", dir.File("mask.txt", "hello")],
            "no-init" => ["--mask", mask],
            "bad-content" => ["--init-image", init, "--mask", mask, "--masked-content", "sand"],
            _ => ["--init-image", init, "--mask", mask, "--mask-blur", "99"],
        };
        var (code, _, error) = CliRun.Run(["generate", "x", "--model", TinyModels.Folder(), "--steps", "2", "--out", outDir, .. args]);
        Assert.Equal(2, code);
        Assert.Contains(message, error);
        if (what == "not-an-image") Assert.Contains("is not a readable image", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.False(Directory.Exists(outDir));
    }
}
