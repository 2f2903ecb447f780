using System.Text.RegularExpressions;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>
/// Where a diffusers-named parameter lives in an original (LDM / CompVis / A1111) checkpoint: the
/// tensor's name, and for OpenCLIP's packed q/k/v which of its equal row blocks.
/// </summary>
public readonly record struct LdmTensor(string Key, int Part = 0, int Parts = 1);

/// <summary>
/// The renames between diffusers/transformers parameter names (what the graph builder uses) and
/// the original LDM layout of single-file checkpoints, written as rules over the architecture
/// (levels, layers per level, which levels attend), so they hold for SD 1.x, SD 2.x and smaller
/// test configurations alike. Names are given without the file's prefixes
/// (<c>model.diffusion_model.</c>, <c>first_stage_model.</c>, <c>cond_stage_model.…</c>).
/// </summary>
public static partial class LdmNames
{
    /// <summary>The LDM name of a UNet2DConditionModel parameter; null if the name is not one.</summary>
    public static string? UNet(string name, UNetConfig c)
    {
        int per = c.LayersPerBlock + 1; // LDM counts each level's layers plus its down/up-sampler
        int levels = c.BlockOutChannels.Length;
        Match m;
        if ((m = TimeEmbedding().Match(name)).Success) return $"time_embed.{(m.Groups[1].Value == "1" ? 0 : 2)}.{m.Groups[2].Value}";
        if (name.StartsWith("conv_in.", StringComparison.Ordinal)) return "input_blocks.0.0." + name["conv_in.".Length..];
        if (name.StartsWith("conv_norm_out.", StringComparison.Ordinal)) return "out.0." + name["conv_norm_out.".Length..];
        if (name.StartsWith("conv_out.", StringComparison.Ordinal)) return "out.2." + name["conv_out.".Length..];
        if ((m = Layer().Match(name)).Success)
        {
            string where = m.Groups[1].Value, kind = m.Groups[3].Value, rest = m.Groups[5].Value;
            if ((where == "mid_block") == m.Groups[2].Success) return null;
            int block = m.Groups[2].Success ? int.Parse(m.Groups[2].Value) : 0, layer = int.Parse(m.Groups[4].Value);
            if (where == "mid_block")
                return kind switch
                {
                    "resnets" when layer <= 1 => $"middle_block.{layer * 2}.{UNetResnet(rest)}",
                    "attentions" when layer == 0 => $"middle_block.1.{rest}",
                    _ => null,
                };
            if (block >= levels || layer > c.LayersPerBlock) return null;
            if (where == "down_blocks")
                return kind switch
                {
                    "resnets" => $"input_blocks.{1 + block * per + layer}.0.{UNetResnet(rest)}",
                    "attentions" => $"input_blocks.{1 + block * per + layer}.1.{rest}",
                    "downsamplers" when layer == 0 && rest.StartsWith("conv.", StringComparison.Ordinal) => $"input_blocks.{(block + 1) * per}.0.op.{rest["conv.".Length..]}",
                    _ => null,
                };
            bool attends = c.CrossAttention[levels - 1 - block];
            return kind switch
            {
                "resnets" => $"output_blocks.{block * per + layer}.0.{UNetResnet(rest)}",
                "attentions" => $"output_blocks.{block * per + layer}.1.{rest}",
                "upsamplers" when layer == 0 => $"output_blocks.{block * per + c.LayersPerBlock}.{(attends ? 2 : 1)}.{rest}",
                _ => null,
            };
        }
        return null;
    }

    /// <summary>The LDM name of an AutoencoderKL parameter; null if the name is not one.</summary>
    public static string? Vae(string name, int levels)
    {
        if (name.StartsWith("quant_conv.", StringComparison.Ordinal) || name.StartsWith("post_quant_conv.", StringComparison.Ordinal)) return name;
        var m = VaeName().Match(name);
        if (!m.Success) return null;
        string half = m.Groups[1].Value, rest = m.Groups[2].Value;
        Match p;
        if (rest.StartsWith("conv_in.", StringComparison.Ordinal) || rest.StartsWith("conv_out.", StringComparison.Ordinal)) return name;
        if (rest.StartsWith("conv_norm_out.", StringComparison.Ordinal)) return $"{half}.norm_out.{rest["conv_norm_out.".Length..]}";
        if ((p = VaeMidResnet().Match(rest)).Success) return $"{half}.mid.block_{int.Parse(p.Groups[1].Value) + 1}.{VaeResnet(p.Groups[2].Value)}";
        if ((p = VaeMidAttention().Match(rest)).Success)
        {
            string part = p.Groups[1].Value switch { "group_norm" => "norm", "to_q" => "q", "to_k" => "k", "to_v" => "v", _ => "proj_out" };
            return $"{half}.mid.attn_1.{part}.{p.Groups[2].Value}";
        }
        if ((p = VaeLevel().Match(rest)).Success)
        {
            string kind = p.Groups[1].Value;
            int level = int.Parse(p.Groups[2].Value);
            if (level >= levels || (kind == "down_blocks") != (half == "encoder")) return null;
            // diffusers numbers the decoder's levels from the bottom; LDM from the top.
            string ldm = half == "encoder" ? $"encoder.down.{level}" : $"decoder.up.{levels - 1 - level}";
            string inner = p.Groups[3].Value;
            if (inner.StartsWith("resnets.", StringComparison.Ordinal))
            {
                var r = ResnetIndex().Match(inner);
                return r.Success ? $"{ldm}.block.{r.Groups[1].Value}.{VaeResnet(r.Groups[2].Value)}" : null;
            }
            if (inner.StartsWith("downsamplers.0.conv.", StringComparison.Ordinal)) return $"{ldm}.downsample.conv.{inner["downsamplers.0.conv.".Length..]}";
            if (inner.StartsWith("upsamplers.0.conv.", StringComparison.Ordinal)) return $"{ldm}.upsample.conv.{inner["upsamplers.0.conv.".Length..]}";
        }
        return null;
    }

    /// <summary>
    /// Where a transformers CLIPTextModel parameter lives in OpenCLIP's text tower (SD 2.x):
    /// q/k/v are row blocks 0/1/2 of the packed <c>attn.in_proj_*</c>. Null if the name is not one.
    /// </summary>
    public static LdmTensor? OpenClip(string name)
    {
        switch (name)
        {
            case "text_model.embeddings.token_embedding.weight": return new("token_embedding.weight");
            case "text_model.embeddings.position_embedding.weight": return new("positional_embedding");
            case "text_model.final_layer_norm.weight": return new("ln_final.weight");
            case "text_model.final_layer_norm.bias": return new("ln_final.bias");
        }
        var m = ClipLayer().Match(name);
        if (!m.Success) return null;
        string block = $"transformer.resblocks.{m.Groups[1].Value}.";
        string rest = m.Groups[2].Value;
        var qkv = Qkv().Match(rest);
        if (qkv.Success) return new($"{block}attn.in_proj_{qkv.Groups[2].Value}", "qkv".IndexOf(qkv.Groups[1].Value[0]), 3);
        string? mapped = rest switch
        {
            _ when rest.StartsWith("layer_norm1.", StringComparison.Ordinal) => "ln_1." + rest["layer_norm1.".Length..],
            _ when rest.StartsWith("layer_norm2.", StringComparison.Ordinal) => "ln_2." + rest["layer_norm2.".Length..],
            _ when rest.StartsWith("self_attn.out_proj.", StringComparison.Ordinal) => "attn.out_proj." + rest["self_attn.out_proj.".Length..],
            _ when rest.StartsWith("mlp.fc1.", StringComparison.Ordinal) => "mlp.c_fc." + rest["mlp.fc1.".Length..],
            _ when rest.StartsWith("mlp.fc2.", StringComparison.Ordinal) => "mlp.c_proj." + rest["mlp.fc2.".Length..],
            _ => null,
        };
        return mapped is null ? null : new(block + mapped);
    }

    private static string UNetResnet(string rest) => Rename(rest, ("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
        ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection."));

    private static string VaeResnet(string rest) => Rename(rest, ("conv_shortcut.", "nin_shortcut."));

    private static string Rename(string rest, params (string From, string To)[] renames)
    {
        foreach (var (from, to) in renames)
            if (rest.StartsWith(from, StringComparison.Ordinal)) return to + rest[from.Length..];
        return rest;
    }

    [GeneratedRegex(@"^time_embedding\.linear_([12])\.(weight|bias)$")]
    private static partial Regex TimeEmbedding();

    // mid_block has no level number (group 2 is empty for it).
    [GeneratedRegex(@"^(down_blocks|mid_block|up_blocks)\.(?:(\d+)\.)?(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex Layer();

    [GeneratedRegex(@"^(encoder|decoder)\.(.+)$")]
    private static partial Regex VaeName();

    [GeneratedRegex(@"^mid_block\.resnets\.([01])\.(.+)$")]
    private static partial Regex VaeMidResnet();

    [GeneratedRegex(@"^mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$")]
    private static partial Regex VaeMidAttention();

    [GeneratedRegex(@"^(down_blocks|up_blocks)\.(\d+)\.(.+)$")]
    private static partial Regex VaeLevel();

    [GeneratedRegex(@"^resnets\.(\d+)\.(.+)$")]
    private static partial Regex ResnetIndex();

    [GeneratedRegex(@"^text_model\.encoder\.layers\.(\d+)\.(.+)$")]
    private static partial Regex ClipLayer();

    [GeneratedRegex(@"^self_attn\.(q|k|v)_proj\.(weight|bias)$")]
    private static partial Regex Qkv();
}
