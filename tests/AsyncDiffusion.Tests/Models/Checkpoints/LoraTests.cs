using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>LoRAs merge as W + m·(α/r)·up·down into exactly the weights they target, and nothing else.</summary>
public class LoraTests
{
    private const ulong Seed = 5;

    /// <summary>One targeted weight: its diffusers name and component, and the LoRA's factors.</summary>
    private sealed record Target(string Component, string Weight, long[] Shape, float[] Down, long[] DownShape, float[] Up, long[] UpShape, double Scale);

    [Fact]
    public void AKohyaLoraChangesExactlyItsTargetedWeightsByTheFormula()
    {
        using var dir = new TempFolder();
        string base_ = WriteBase(dir);
        var random = new Random(11);
        var targets = new[]
        {
            // A linear layer (alpha 2, rank 4), a 1×1 projection (alpha = rank), a 3×3 LoCon convolution under its LDM name, a text layer without alpha.
            Make(random, "unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", [64, 64], 4, alpha: 2),
            Make(random, "unet", "down_blocks.1.attentions.0.proj_in.weight", [64, 64, 1, 1], 4, alpha: 4),
            Make(random, "unet", "up_blocks.0.resnets.0.conv1.weight", [64, 128, 3, 3], 3, alpha: 1),
            Make(random, "text_encoder", "text_model.encoder.layers.1.self_attn.q_proj.weight", [32, 32], 2, alpha: null),
        };
        var tensors = new List<FakeTensor>();
        foreach (var t in targets)
        {
            string module = t.Weight[..^".weight".Length];
            string name = t.Component == "text_encoder" ? "lora_te_" + module.Replace('.', '_')
                : t.Weight.StartsWith("up_blocks.0.resnets.0.", StringComparison.Ordinal) ? "lora_unet_output_blocks_0_0_in_layers_2" // LDM-style kohya name
                : "lora_unet_" + module.Replace('.', '_');
            tensors.Add(new(name + ".lora_down.weight", "F32", t.DownShape, t.Down));
            tensors.Add(new(name + ".lora_up.weight", "F16", t.UpShape, t.Up.Select(v => (float)(Half)v).ToArray()));
            if (t.Scale != 1 || t.Component == "unet") tensors.Add(new(name + ".alpha", "F32", [], [(float)(t.Scale * t.DownShape[0])]));
        }
        // Keys that place nowhere must be reported, not dropped.
        tensors.Add(new("lora_unet_no_such_layer.lora_down.weight", "F32", [2, 8], new float[16]));
        tensors.Add(new("lora_unet_no_such_layer.lora_up.weight", "F32", [8, 2], new float[16]));
        tensors.Add(new("lora_unet_down_blocks_1_attentions_0_proj_out.hada_w1_a", "F32", [2, 2], new float[4]));
        string lora = Path.Combine(dir.Path, "style.safetensors");
        SafeTensorsWriter.Write(lora, tensors);

        const double weight = 0.7;
        var cache = new CheckpointCache(Path.Combine(dir.Path, "cache"));
        var plain = CheckpointConverter.Resolve(Import(base_), cache);
        var merged = CheckpointConverter.Resolve(Import(base_) with { Loras = [new LoraReference(lora, weight)] }, cache);

        Assert.NotEqual(plain.Folder, merged.Folder);
        Assert.Contains("LoRA 'style' × 0.7: 3 UNet and 1 text encoder layers", merged.Decisions);
        var warning = Assert.Single(merged.Warnings);
        Assert.Contains("3 tensors not applied", warning);
        Assert.Contains("lora_unet_no_such_layer.lora_down.weight", warning);
        Assert.Contains("hada_w1_a", warning);
        foreach (var component in new[] { "unet", "text_encoder" })
        {
            var before = ModelProbe.Initializers(plain.Folder, component);
            var after = ModelProbe.Initializers(merged.Folder, component);
            foreach (var (name, values) in before)
            {
                var target = targets.FirstOrDefault(t => t.Component == component && t.Weight == name);
                if (target is null)
                {
                    Assert.True(values.AsSpan().SequenceEqual(after[name]), $"{component} {name} changed but no LoRA module targets it");
                    continue;
                }
                var expected = Merge(values, target, weight);
                double worst = expected.Zip(after[name], (e, a) => Math.Abs(e - a)).Max();
                Assert.True(worst < 1e-5, $"{name}: merged weight off by {worst}");
                Assert.True(expected.Zip(values, (e, v) => Math.Abs(e - v)).Max() > 1e-3, $"{name}: the test's delta is too small to see");
            }
        }
    }

    [Fact]
    public void APeftLoraWithoutAlphaMergesAtScaleOne()
    {
        using var dir = new TempFolder();
        string base_ = WriteBase(dir);
        var target = Make(new Random(3), "unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", [64, 32], 4, alpha: null);
        string lora = WritePair(dir, "peft", "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k", ".lora_A.weight", ".lora_B.weight", target);
        var cache = new CheckpointCache(Path.Combine(dir.Path, "cache"));
        var plain = CheckpointConverter.Resolve(Import(base_), cache);
        var merged = CheckpointConverter.Resolve(Import(base_) with { Loras = [LoraReference.Parse(lora + ":1.5")] }, cache);

        Assert.Empty(merged.Warnings);
        var before = ModelProbe.Initializers(plain.Folder, "unet")[target.Weight];
        var after = ModelProbe.Initializers(merged.Folder, "unet")[target.Weight];
        var expected = Merge(before, target, 1.5);
        Assert.True(expected.Zip(after, (e, a) => Math.Abs(e - a)).Max() < 1e-5);
    }

    [Fact]
    public void ALoraAtWeightZeroIsTheBaseModel()
    {
        using var dir = new TempFolder();
        string base_ = WriteBase(dir);
        var target = Make(new Random(4), "unet", "down_blocks.1.attentions.0.proj_in.weight", [64, 64, 1, 1], 2, alpha: 2);
        string lora = WritePair(dir, "zero", "lora_unet_down_blocks_1_attentions_0_proj_in", ".lora_down.weight", ".lora_up.weight", target);
        var cache = new CheckpointCache(Path.Combine(dir.Path, "cache"));
        var plain = CheckpointConverter.Resolve(Import(base_), cache);
        var zero = CheckpointConverter.Resolve(Import(base_) with { Loras = [LoraReference.Parse(lora + ":0")] }, cache);
        Assert.Equal(plain.Folder, zero.Folder);
        Assert.True(zero.FromCache);
    }

    [Fact]
    public void ALoraForAnotherModelIsRefusedNamingTheLayer()
    {
        using var dir = new TempFolder();
        string base_ = WriteBase(dir);
        var cache = new CheckpointCache(Path.Combine(dir.Path, "cache"));
        // SD 1.5-sized factors on the tiny model's layer.
        string wrong = Path.Combine(dir.Path, "wrong.safetensors");
        SafeTensorsWriter.Write(wrong,
        [
            new("lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight", "F32", [4, 640, 1, 1], new float[4 * 640]),
            new("lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight", "F32", [640, 4, 1, 1], new float[4 * 640]),
        ]);
        var e = Assert.Throws<ModelFolderException>(() => CheckpointConverter.Resolve(Import(base_) with { Loras = [new LoraReference(wrong)] }, cache));
        Assert.Contains("lora_unet_down_blocks_1_attentions_0_proj_in", e.Message);
        Assert.Contains("[4, 640, 1, 1]", e.Message);

        string sdxl = Path.Combine(dir.Path, "sdxl.safetensors");
        SafeTensorsWriter.Write(sdxl,
        [
            new("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "F32", [4, 768], new float[4 * 768]),
            new("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", "F32", [3072, 4], new float[4 * 3072]),
        ]);
        e = Assert.Throws<ModelFolderException>(() => CheckpointConverter.Resolve(Import(base_) with { Loras = [new LoraReference(sdxl)] }, cache));
        Assert.Contains("places none of its 2 tensors", e.Message);
        Assert.False(Directory.Exists(cache.Root) && Directory.EnumerateDirectories(cache.Root).Any(), "nothing is cached for a refused LoRA");
    }

    [Theory]
    [InlineData("style.safetensors", "style.safetensors", 1.0)]
    [InlineData("style.safetensors:0.8", "style.safetensors", 0.8)]
    [InlineData("C:\\loras\\style.safetensors:-0.5", "C:\\loras\\style.safetensors", -0.5)]
    [InlineData("C:\\loras\\style.safetensors", "C:\\loras\\style.safetensors", 1.0)]
    public void LoraArgumentsAreFileAndOptionalWeight(string text, string path, double weight)
    {
        var parsed = LoraReference.Parse(text);
        Assert.Equal(path, parsed.Path);
        Assert.Equal(weight, parsed.Weight);
    }

    private static string WritePair(TempFolder dir, string name, string module, string down, string up, Target target)
    {
        string path = Path.Combine(dir.Path, name + ".safetensors");
        SafeTensorsWriter.Write(path, [new(module + down, "F32", target.DownShape, target.Down), new(module + up, "F32", target.UpShape, target.Up)]);
        return path;
    }

    private static CheckpointImport Import(string file) => new() { Source = file, Architecture = SyntheticPreset.Tiny };

    private static string WriteBase(TempFolder dir)
    {
        string file = Path.Combine(dir.Path, "base.safetensors");
        FakeCheckpoints.WriteSingleFile(file, SyntheticPreset.Tiny, ModelFamily.Sd1, "F32", Seed, extras: false);
        return file;
    }

    private static Target Make(Random random, string component, string weight, long[] shape, int rank, double? alpha)
    {
        long outputs = shape[0], inputs = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        long[] downShape = shape.Length == 4 ? [rank, shape[1], shape[2], shape[3]] : [rank, shape[1]];
        long[] upShape = shape.Length == 4 ? [outputs, rank, 1, 1] : [outputs, rank];
        float[] Draw(long n) => Enumerable.Range(0, (int)n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var up = Draw(outputs * rank).Select(v => (float)(Half)v).ToArray(); // stored as F16 in the kohya file
        return new Target(component, weight, shape, Draw(rank * inputs), downShape, up, upShape, alpha is double a ? a / rank : 1.0);
    }

    /// <summary>W + m·scale·up·down in double, laid out as the ONNX initializer stores it (linear weights transposed to [in, out]).</summary>
    private static double[] Merge(float[] stored, Target t, double weight)
    {
        long outputs = t.Shape[0], inputs = stored.Length / outputs;
        int rank = (int)t.DownShape[0];
        var result = new double[stored.Length];
        for (long o = 0; o < outputs; o++)
            for (long j = 0; j < inputs; j++)
            {
                double delta = 0;
                for (int r = 0; r < rank; r++) delta += (double)t.Up[o * rank + r] * t.Down[r * inputs + j];
                long at = t.Shape.Length == 2 ? j * outputs + o : o * inputs + j;
                result[at] = stored[at] + weight * t.Scale * delta;
            }
        return result;
    }
}
