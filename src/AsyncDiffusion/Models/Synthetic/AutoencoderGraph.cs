using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>An AutoencoderKL configuration.</summary>
public sealed record VaeConfig(int[] BlockOutChannels, int LayersPerBlock, int LatentChannels, int NormGroups, double ScalingFactor)
{
    /// <summary>Stable Diffusion's VAE (scale factor 8).</summary>
    public static VaeConfig Sd { get; } = new([128, 256, 512, 512], 2, 4, 32, 0.18215);

    /// <summary>2^(blocks − 1): image pixels per latent pixel.</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Length - 1);
}

/// <summary>Writes AutoencoderKL's decoder (with post_quant_conv) and encoder (with quant_conv), as the exporters split them.</summary>
internal static class AutoencoderGraph
{
    public static void BuildDecoder(OnnxGraphBuilder g, VaeConfig c)
    {
        var L = new GraphLayers(g);
        var z = g.Input("latent_sample", g.FloatType, "batch", c.LatentChannels, "latent_height", "latent_width");
        var h = L.Conv(z, "post_quant_conv", c.LatentChannels, c.LatentChannels, 1);
        int channels = c.BlockOutChannels[^1];
        h = L.Conv(h, "decoder.conv_in", c.LatentChannels, channels, 3);
        h = MidBlock(L, h, "decoder.mid_block", channels, c.NormGroups);
        int blocks = c.BlockOutChannels.Length;
        for (int u = 0; u < blocks; u++)
        {
            int outCh = c.BlockOutChannels[blocks - 1 - u];
            for (int l = 0; l <= c.LayersPerBlock; l++)
            {
                h = Resnet(L, h, $"decoder.up_blocks.{u}.resnets.{l}", channels, outCh, c.NormGroups);
                channels = outCh;
            }
            if (u < blocks - 1) h = L.Conv(L.Upsample2x(h), $"decoder.up_blocks.{u}.upsamplers.0.conv", channels, channels, 3);
        }
        h = L.Conv(L.SiLU(L.GroupNorm(h, "decoder.conv_norm_out", channels, c.NormGroups, 1e-6f)), "decoder.conv_out", channels, 3, 3);
        g.Output("sample", h, g.FloatType, "batch", 3, "height", "width");
    }

    public static void BuildEncoder(OnnxGraphBuilder g, VaeConfig c, bool sampleInGraph)
    {
        var L = new GraphLayers(g);
        var x = g.Input("sample", g.FloatType, "batch", 3, "height", "width");
        int channels = c.BlockOutChannels[0];
        var h = L.Conv(x, "encoder.conv_in", 3, channels, 3);
        int blocks = c.BlockOutChannels.Length;
        for (int b = 0; b < blocks; b++)
        {
            int outCh = c.BlockOutChannels[b];
            for (int l = 0; l < c.LayersPerBlock; l++)
            {
                h = Resnet(L, h, $"encoder.down_blocks.{b}.resnets.{l}", channels, outCh, c.NormGroups);
                channels = outCh;
            }
            // diffusers pads right and bottom by one, then convolves with stride 2 and no padding.
            if (b < blocks - 1) h = L.Conv(h, $"encoder.down_blocks.{b}.downsamplers.0.conv", channels, channels, 3, stride: 2, pads: [0, 0, 1, 1]);
        }
        h = MidBlock(L, h, "encoder.mid_block", channels, c.NormGroups);
        h = L.Conv(L.SiLU(L.GroupNorm(h, "encoder.conv_norm_out", channels, c.NormGroups, 1e-6f)), "encoder.conv_out", channels, 2 * c.LatentChannels, 3);
        // A small gain keeps log-variance near 0 and the mean at latent scale.
        var moments = L.Conv(h, "quant_conv", 2 * c.LatentChannels, 2 * c.LatentChannels, 1, gain: 0.5);
        if (!sampleInGraph)
        {
            g.Output("latent_parameters", moments, g.FloatType, "batch", 2 * c.LatentChannels, "latent_height", "latent_width");
            return;
        }
        // Old exports sample inside the graph: mean + exp(logvar / 2) · N(0, 1).
        var parts = g.Node("Split", [moments, g.Int64(c.LatentChannels, c.LatentChannels)], [g.Fresh("mean"), g.Fresh("logvar")], ("axis", 1));
        var std = g.Op("Exp", [g.Op("Mul", [g.Op("Clip", [parts[1], g.Float(-30f), g.Float(20f)]), g.Float(0.5f)])]);
        var noise = g.Op("RandomNormalLike", [parts[0]], ("dtype", (int)g.FloatType));
        g.Output("latent_sample", g.Op("Add", [parts[0], g.Op("Mul", [std, noise])]), g.FloatType, "batch", c.LatentChannels, "latent_height", "latent_width");
    }

    private static string Resnet(GraphLayers L, string x, string name, int cin, int cout, int groups)
    {
        var g = L.Graph;
        var h = L.Conv(L.SiLU(L.GroupNorm(x, $"{name}.norm1", cin, groups, 1e-6f)), $"{name}.conv1", cin, cout, 3);
        h = L.Conv(L.SiLU(L.GroupNorm(h, $"{name}.norm2", cout, groups, 1e-6f)), $"{name}.conv2", cout, cout, 3, gain: GraphLayers.ResidualGain);
        var shortcut = cin == cout ? x : L.Conv(x, $"{name}.conv_shortcut", cin, cout, 1);
        return g.Op("Add", [shortcut, h]);
    }

    // ResNet, single-head spatial self-attention with a residual, ResNet.
    private static string MidBlock(GraphLayers L, string x, string name, int channels, int groups)
    {
        var g = L.Graph;
        var h = Resnet(L, x, $"{name}.resnets.0", channels, channels, groups);
        var tokens = L.ToTokens(L.GroupNorm(h, $"{name}.attentions.0.group_norm", channels, groups, 1e-6f));
        var attended = L.Attention(tokens, tokens, $"{name}.attentions.0", channels, channels, 1, qkvBias: true);
        h = g.Op("Add", [L.FromTokens(attended, h), h]);
        return Resnet(L, h, $"{name}.resnets.1", channels, channels, groups);
    }
}
