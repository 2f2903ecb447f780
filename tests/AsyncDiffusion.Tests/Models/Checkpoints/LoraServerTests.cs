using System.Net;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Tests.Server;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>The server's LoRAs: listed from --lora-dir, applied by &lt;lora:name:weight&gt; in prompts (the tag never reaches the tokenizer).</summary>
public class LoraServerTests
{
    [Fact]
    public async Task LoraTagsInPromptsMergeTheLoraAndAreListed()
    {
        using var dir = new TempFolder();
        string source = Path.Combine(dir.Path, "tiny-diffusers");
        FakeCheckpoints.WriteDiffusersFolder(source, SyntheticPreset.Tiny, "F32", 4);
        string cache = Path.Combine(dir.Path, "cache");
        var import = new CheckpointImport { Source = source };
        var converted = CheckpointConverter.Resolve(import, new CheckpointCache(cache));
        string loras = Path.Combine(dir.Path, "loras");
        var random = new Random(9);
        float[] Draw(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        SafeTensorsWriter.Write(Path.Combine(loras, "style.safetensors"),
        [
            new("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_v.lora_A.weight", "F32", [4, 64], Draw(256)),
            new("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_v.lora_B.weight", "F32", [64, 4], Draw(256)),
        ]);

        await using var server = await TestServer.StartAsync(o => o with
        {
            Models = [converted.Folder],
            Checkpoints = new Dictionary<string, ServedCheckpoint> { [converted.Folder] = new("tiny-diffusers", converted.Sha256, import) },
            LoraDir = loras,
            CheckpointCache = cache,
        });
        var http = server.Client;
        using var listed = JsonDocument.Parse(await http.GetStringAsync("/sdapi/v1/loras"));
        var lora = Assert.Single(listed.RootElement.EnumerateArray());
        Assert.Equal("style", lora.GetProperty("name").GetString());
        Assert.Equal("style.safetensors", lora.GetProperty("path").GetString());
        using var models = JsonDocument.Parse(await http.GetStringAsync("/sdapi/v1/sd-models"));
        Assert.Equal(converted.Sha256[..10], models.RootElement[0].GetProperty("hash").GetString());

        async Task<(string Image, string Infotext)> Generate(string prompt)
        {
            var body = JsonSerializer.Serialize(new { prompt, steps = 2, seed = 7, width = 64, height = 64, sampler_name = "Euler" });
            var response = await http.PostAsync("/sdapi/v1/txt2img", new StringContent(body, Encoding.UTF8, "application/json"));
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            using var doc = JsonDocument.Parse(text);
            using var info = JsonDocument.Parse(doc.RootElement.GetProperty("info").GetString()!);
            return (doc.RootElement.GetProperty("images")[0].GetString()!, info.RootElement.GetProperty("infotexts")[0].GetString()!);
        }

        var plain = await Generate("a lighthouse");
        var styled = await Generate("a lighthouse <lora:style:1.5>");
        var zero = await Generate("a lighthouse <lora:style:0>");
        var again = await Generate("a lighthouse");
        Assert.NotEqual(plain.Image, styled.Image);
        Assert.Equal(plain.Image, zero.Image);
        Assert.Equal(plain.Image, again.Image);
        Assert.StartsWith("a lighthouse\n", styled.Infotext); // the tag is not part of the text the model saw

        var missing = await http.PostAsync("/sdapi/v1/txt2img", new StringContent("""{"prompt": "x <lora:nope:1>", "steps": 1}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("LoRA 'nope' is not available; available: style", await missing.Content.ReadAsStringAsync());
    }
}
