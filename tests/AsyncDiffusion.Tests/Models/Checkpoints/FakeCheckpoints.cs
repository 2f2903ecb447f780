using System.Text.Json.Nodes;
using AsyncDiffusion.Models.Checkpoints;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Tests.Models.Checkpoints;

/// <summary>
/// Checkpoints with real names, shapes and layout, filled with the synthetic model's own seeded
/// weights: a single LDM-layout file (SD 1.x or SD 2.x text tower), or a diffusers folder. Converting
/// one must give back the synthetic model.
/// </summary>
internal static class FakeCheckpoints
{
    /// <summary>The values the synthetic writer draws for every parameter (state-dict layout), per component.</summary>
    public static Dictionary<string, List<(ParameterSpec Spec, float[] Values)>> SyntheticWeights(SyntheticPreset architecture, ulong seed)
    {
        var seeded = new SeededWeights(seed);
        return ModelWriter.Parameters(architecture, ContractVintage.Optimum)
            .ToDictionary(c => c.Key, c => c.Value.Select(s => (s, seeded.Values(s))).ToList());
    }

    /// <summary>A single file in the original layout; with <paramref name="extras"/> also what real files carry besides the weights.</summary>
    public static void WriteSingleFile(string path, SyntheticPreset architecture, ModelFamily family, string dtype, ulong seed, bool extras = true,
        IEnumerable<FakeTensor>? more = null)
    {
        var tensors = new List<FakeTensor>();
        var packed = new Dictionary<string, (long[] Shape, float[] Values)>();
        int vaeLevels = architecture.Vae.BlockOutChannels.Length;
        foreach (var (component, parameters) in SyntheticWeights(architecture, seed))
            foreach (var (spec, values) in parameters)
            {
                switch (component)
                {
                    case "unet":
                        tensors.Add(new("model.diffusion_model." + LdmNames.UNet(spec.Name, architecture.UNet), dtype, spec.Shape, values));
                        break;
                    case "vae_decoder" or "vae_encoder":
                        // LDM's VAE attention is 1×1 convolutions.
                        bool conv = spec.Shape.Length == 2 && spec.Name.Contains("mid_block.attentions", StringComparison.Ordinal);
                        tensors.Add(new("first_stage_model." + LdmNames.Vae(spec.Name, vaeLevels), dtype, conv ? [.. spec.Shape, 1, 1] : spec.Shape, values));
                        break;
                    case "text_encoder" when family == ModelFamily.Sd1:
                        tensors.Add(new("cond_stage_model.transformer." + spec.Name, dtype, spec.Shape, values));
                        break;
                    default:
                        var at = LdmNames.OpenClip(spec.Name)!.Value;
                        string key = "cond_stage_model.model." + at.Key;
                        if (at.Parts == 1) { tensors.Add(new(key, dtype, spec.Shape, values)); break; }
                        if (!packed.TryGetValue(key, out var p)) packed[key] = p = ([spec.Shape[0] * at.Parts, .. spec.Shape[1..]], new float[values.Length * at.Parts]);
                        values.CopyTo(p.Values, at.Part * values.Length);
                        break;
                }
            }
        tensors.AddRange(packed.Select(p => new FakeTensor(p.Key, dtype, p.Value.Shape, p.Value.Values)));
        if (extras) tensors.AddRange(Extras(architecture, family, tensors));
        if (more is not null) tensors.AddRange(more);
        SafeTensorsWriter.Write(path, tensors);
    }

    // Schedule buffers, EMA copies and scalars, position ids; for SD 2 OpenCLIP's projection, logit scale and unused last block.
    private static IEnumerable<FakeTensor> Extras(SyntheticPreset architecture, ModelFamily family, List<FakeTensor> weights)
    {
        foreach (var buffer in new[] { "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
            "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2" })
            yield return new(buffer, "F32", [1000], new float[1000]);
        yield return new("model_ema.decay", "F32", [], [0.9999f]);
        yield return new("model_ema.num_updates", "I32", [], Integers: [1]);
        foreach (var w in weights.Where(w => w.Name.StartsWith("model.diffusion_model.", StringComparison.Ordinal)).ToList())
            yield return w with { Name = "model_ema." + w.Name["model.".Length..].Replace(".", "") };
        int hidden = architecture.TextEncoder.Hidden;
        if (family == ModelFamily.Sd1)
        {
            yield return new("cond_stage_model.transformer.text_model.embeddings.position_ids", "I64", [1, 77], Integers: Enumerable.Range(0, 77).Select(i => (long)i).ToArray());
            yield break;
        }
        yield return new("cond_stage_model.model.text_projection", weights[0].DType, [hidden, hidden], new float[hidden * hidden]);
        yield return new("cond_stage_model.model.logit_scale", weights[0].DType, [], [4.6f]);
        string last = $"cond_stage_model.model.transformer.resblocks.{architecture.TextEncoder.Layers}.";
        foreach (var w in weights.Where(w => w.Name.StartsWith("cond_stage_model.model.transformer.resblocks.0.", StringComparison.Ordinal)).ToList())
            yield return w with { Name = last + w.Name["cond_stage_model.model.transformer.resblocks.0.".Length..] };
    }

    /// <summary>A diffusers folder: model_index.json, per-component config.json and safetensors weights under diffusers names.</summary>
    public static void WriteDiffusersFolder(string dir, SyntheticPreset architecture, string dtype, ulong seed)
    {
        var weights = SyntheticWeights(architecture, seed);
        IEnumerable<FakeTensor> Of(params string[] components) =>
            components.SelectMany(c => weights[c]).Select(w => new FakeTensor(w.Spec.Name, dtype, w.Spec.Shape, w.Values));
        SafeTensorsWriter.Write(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"), Of("unet"));
        SafeTensorsWriter.Write(Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), Of("vae_decoder", "vae_encoder"));
        SafeTensorsWriter.Write(Path.Combine(dir, "text_encoder", "model.safetensors"), Of("text_encoder"));
        var u = architecture.UNet;
        Json(Path.Combine(dir, "unet", "config.json"), new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["block_out_channels"] = Array(u.BlockOutChannels),
            ["down_block_types"] = new JsonArray(u.CrossAttention.Select(a => (JsonNode)(a ? "CrossAttnDownBlock2D" : "DownBlock2D")).ToArray()),
            ["up_block_types"] = new JsonArray(u.CrossAttention.Reverse().Select(a => (JsonNode)(a ? "CrossAttnUpBlock2D" : "UpBlock2D")).ToArray()),
            ["layers_per_block"] = u.LayersPerBlock,
            ["cross_attention_dim"] = u.CrossAttentionDim,
            ["attention_head_dim"] = Array(u.AttentionHeads),
            ["use_linear_projection"] = u.UseLinearProjection,
            ["norm_num_groups"] = u.NormGroups,
            ["sample_size"] = u.SampleSize,
            ["in_channels"] = u.InChannels,
            ["out_channels"] = u.OutChannels,
        });
        var t = architecture.TextEncoder;
        Json(Path.Combine(dir, "text_encoder", "config.json"), new JsonObject
        {
            ["hidden_size"] = t.Hidden, ["num_hidden_layers"] = t.Layers, ["num_attention_heads"] = t.Heads, ["intermediate_size"] = t.Intermediate,
            ["max_position_embeddings"] = t.MaxPositions, ["vocab_size"] = t.VocabSize, ["hidden_act"] = t.QuickGelu ? "quick_gelu" : "gelu",
        });
        var v = architecture.Vae;
        Json(Path.Combine(dir, "vae", "config.json"), new JsonObject
        {
            ["_class_name"] = "AutoencoderKL", ["block_out_channels"] = Array(v.BlockOutChannels), ["layers_per_block"] = v.LayersPerBlock,
            ["latent_channels"] = v.LatentChannels, ["norm_num_groups"] = v.NormGroups, ["scaling_factor"] = v.ScalingFactor,
        });
        Directory.CreateDirectory(Path.Combine(dir, "scheduler"));
        File.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), architecture.SchedulerConfigJson);
        Json(Path.Combine(dir, "model_index.json"), new JsonObject { ["_class_name"] = "StableDiffusionPipeline", ["_diffusers_version"] = "0.30.0" });
    }

    private static JsonArray Array(int[] values) => new(values.Select(x => (JsonNode)x).ToArray());

    private static void Json(string path, JsonNode node)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, node.ToJsonString());
    }

    /// <summary>A small SD 2-shaped architecture: GELU text encoder whose width is the UNet's context, linear projections.</summary>
    public static SyntheticPreset TinySd2 { get; } = SyntheticPreset.Tiny with
    {
        Name = "tiny-sd2",
        TextEncoder = SyntheticPreset.Tiny.TextEncoder with { QuickGelu = false },
        UNet = SyntheticPreset.Tiny.UNet with { UseLinearProjection = true },
        PadToken = "!",
    };
}
