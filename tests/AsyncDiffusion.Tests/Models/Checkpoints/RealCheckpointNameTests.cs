using System.Text.Json;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>
/// The real tensor lists of SD 1.5, SD 2.1 and SD 1.5-inpainting single files (../shared/data/checkpoints):
/// every tensor the graphs need is found with the right shape, every other tensor is one the
/// tools users know ignore, and the renames agree with diffusers' published map. The files are
/// sparse (real header, no data), so nothing of the 4-5 GB is allocated.
/// </summary>
public class RealCheckpointNameTests
{
    public static TheoryData<string, bool> Files() => new()
    {
        { "sd15", false }, { "sd15", true }, { "sd21", false }, { "sd15-inpainting", false },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void EveryRealNameMapsWithNoLeftoversAndNoneMissing(string which, bool emaCopies)
    {
        using var dir = new TempFolder();
        var tensors = RealTensors(which);
        if (emaCopies)
            // Non-pruned files shadow every UNet tensor: model_ema.<name without "model." and dots>.
            tensors.AddRange(tensors.Where(t => t.Name.StartsWith("model.diffusion_model.", StringComparison.Ordinal)).ToList()
                .Select(t => t with { Name = "model_ema." + t.Name["model.".Length..].Replace(".", "") }));
        string file = Path.Combine(dir.Path, which + ".safetensors");
        SafeTensorsWriter.Write(file, tensors, sparse: true);

        using var checkpoint = OpenedCheckpoint.Open(file);
        var kind = checkpoint.Kind;
        Assert.Equal(which == "sd21" ? ModelFamily.Sd2 : ModelFamily.Sd1, kind.Family);
        Assert.Equal(which == "sd15-inpainting" ? 9 : 4, kind.InChannels);
        var architecture = (kind.Family == ModelFamily.Sd1 ? SyntheticPreset.Sd15 : SyntheticPreset.Sd21) with
        {
            UNet = (kind.Family == ModelFamily.Sd1 ? UNetConfig.Sd15 : UNetConfig.Sd2) with { InChannels = kind.InChannels },
        };
        var components = checkpoint.Components(architecture);
        var used = new HashSet<string>(StringComparer.Ordinal);
        int parameters = 0;
        foreach (var (component, specs) in ModelWriter.Parameters(architecture, ContractVintage.Optimum))
            foreach (var spec in specs)
            {
                var location = components[component].Locate(spec.Name, out string expected);
                Assert.True(location is not null, $"{component} parameter {spec.Name} has no tensor (looked for {expected})");
                CheckpointWeights.CheckShape(location, spec, which);
                used.Add(location.Info.Name);
                parameters++;
            }
        var leftovers = checkpoint.Leftovers((_, name) => used.Contains(name), architecture);
        Assert.Empty(leftovers);
        // 686 UNet + 248 VAE tensors, and the text tower: 196 CLIP tensors, or OpenCLIP's 23 used blocks with packed q/k/v.
        Assert.Equal(which == "sd21" ? 686 + 248 + 4 + 23 * 12 : 686 + 248 + 196, used.Count);
        Assert.Equal(which == "sd21" ? 686 + 248 + 4 + 23 * 16 : 686 + 248 + 196, parameters);
    }

    [Fact]
    public void TheRenamesAreDiffusersOwn()
    {
        using var sd15 = JsonDocument.Parse(File.ReadAllText(SharedData.PathOf("data", "checkpoints", "sd15_diffusers_names.json")));
        int checkedRows = 0;
        foreach (var row in sd15.RootElement.GetProperty("rows").EnumerateArray())
        {
            string ldm = row.GetProperty("ldm").GetString()!, diffusers = row.GetProperty("diffusers").GetString()!;
            string? mapped = row.GetProperty("component").GetString() switch
            {
                "unet" => "model.diffusion_model." + LdmNames.UNet(diffusers, UNetConfig.Sd15),
                "vae" => "first_stage_model." + LdmNames.Vae(diffusers, 4),
                _ when diffusers.EndsWith("position_ids", StringComparison.Ordinal) => null, // a buffer, not a parameter
                _ => "cond_stage_model.transformer." + diffusers,
            };
            if (mapped is null) continue;
            Assert.Equal(ldm, mapped);
            checkedRows++;
        }
        Assert.Equal(686 + 248 + 196, checkedRows);

        using var sd21 = JsonDocument.Parse(File.ReadAllText(SharedData.PathOf("data", "checkpoints", "sd21_ldm_keys.json")));
        checkedRows = 0;
        foreach (var row in sd21.RootElement.GetProperty("diffusers_rows").EnumerateArray())
        {
            if (row.GetProperty("component").GetString() != "text_encoder" || row.GetProperty("diffusers").ValueKind == JsonValueKind.Null) continue;
            string ldm = row.GetProperty("ldm").GetString()!, diffusers = row.GetProperty("diffusers").GetString()!;
            if (ldm.Contains("resblocks.23.", StringComparison.Ordinal)) continue; // dropped: diffusers keeps 23 blocks
            var at = LdmNames.OpenClip(diffusers);
            Assert.NotNull(at);
            Assert.Equal(ldm, "cond_stage_model.model." + at.Value.Key);
            string transform = row.GetProperty("transform").GetString()!;
            if (transform.StartsWith("split rows", StringComparison.Ordinal))
            {
                // "rows 1024..2047 = k": the block index is the first row / 1024.
                int first = int.Parse(transform.Split("rows ")[1].Split("..")[0]);
                Assert.Equal(first / 1024, at.Value.Part);
                Assert.Equal(3, at.Value.Parts);
            }
            else Assert.Equal(1, at.Value.Parts);
            checkedRows++;
        }
        Assert.Equal(4 + 23 * 16, checkedRows);
    }

    internal static List<FakeTensor> RealTensors(string which)
    {
        string list = which == "sd21" ? "sd21_ldm_keys.json" : "sd15_ldm_keys.json";
        using var doc = JsonDocument.Parse(File.ReadAllText(SharedData.PathOf("data", "checkpoints", list)));
        var tensors = doc.RootElement.GetProperty("tensors").EnumerateArray()
            .Select(t => new FakeTensor(t.GetProperty("name").GetString()!, t.GetProperty("dtype").GetString()!,
                t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()))
            .ToList();
        if (which == "sd15-inpainting")
        {
            using var inpaint = JsonDocument.Parse(File.ReadAllText(SharedData.PathOf("data", "checkpoints", "sd15_inpainting.json")));
            foreach (var diff in inpaint.RootElement.GetProperty("difference").EnumerateArray())
            {
                string name = diff.GetProperty("name").GetString()!;
                int i = tensors.FindIndex(t => t.Name == name);
                if (i >= 0) tensors[i] = tensors[i] with { Shape = diff.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray() };
            }
        }
        return tensors;
    }
}
