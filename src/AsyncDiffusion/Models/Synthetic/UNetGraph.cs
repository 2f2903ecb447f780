using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>A UNet2DConditionModel configuration (the keys of a diffusers unet/config.json that shape the graph).</summary>
public sealed record UNetConfig(
    int[] BlockOutChannels,
    bool[] CrossAttention,
    int LayersPerBlock,
    int CrossAttentionDim,
    int[] AttentionHeads,
    bool UseLinearProjection,
    int NormGroups,
    int SampleSize,
    int InChannels = 4,
    int OutChannels = 4)
{
    /// <summary>Stable Diffusion 1.5.</summary>
    public static UNetConfig Sd15 { get; } = new([320, 640, 1280, 1280], [true, true, true, false], 2, 768, [8, 8, 8, 8], false, 32, 64);

    /// <summary>Stable Diffusion 2.x (and SD-Turbo): 64-wide heads, linear projections, OpenCLIP-H context.</summary>
    public static UNetConfig Sd2 { get; } = new([320, 640, 1280, 1280], [true, true, true, false], 2, 1024, [5, 10, 20, 20], true, 32, 96);
}

/// <summary>
/// Writes a UNet2DConditionModel as an ONNX graph: sinusoidal timestep embedding and MLP,
/// ResNet blocks with GroupNorm/SiLU/time projection, Transformer2D blocks (self-attention,
/// cross-attention on the text states, GEGLU feed-forward), down/mid/up blocks with skip
/// concatenation, then GroupNorm, SiLU and the output convolution.
/// </summary>
internal static class UNetGraph
{
    public static void Build(OnnxGraphBuilder g, UNetConfig c, ContractVintage vintage)
    {
        var L = new GraphLayers(g);
        var ft = g.FloatType;
        var sample = g.Input("sample", ft, "batch", c.InChannels, "height", "width");
        var timestep = vintage.TimestepInput(g);
        var context = g.Input("encoder_hidden_states", ft, "batch", "sequence", c.CrossAttentionDim);

        int ch0 = c.BlockOutChannels[0];
        int temb = ch0 * 4;
        var emb = TimeEmbedding(g, L, timestep, sample, ch0, temb);

        var h = L.Conv(sample, "conv_in", c.InChannels, ch0, 3);
        var skips = new Stack<(string Value, int Channels)>();
        skips.Push((h, ch0));
        int channels = ch0;
        int blocks = c.BlockOutChannels.Length;
        for (int b = 0; b < blocks; b++)
        {
            int outCh = c.BlockOutChannels[b];
            for (int l = 0; l < c.LayersPerBlock; l++)
            {
                h = Resnet(L, h, emb, $"down_blocks.{b}.resnets.{l}", channels, outCh, temb, c.NormGroups);
                channels = outCh;
                if (c.CrossAttention[b]) h = Transformer(L, h, context, $"down_blocks.{b}.attentions.{l}", channels, c.AttentionHeads[b], c);
                skips.Push((h, channels));
            }
            if (b < blocks - 1)
            {
                h = L.Conv(h, $"down_blocks.{b}.downsamplers.0.conv", channels, channels, 3, stride: 2);
                skips.Push((h, channels));
            }
        }

        h = Resnet(L, h, emb, "mid_block.resnets.0", channels, channels, temb, c.NormGroups);
        h = Transformer(L, h, context, "mid_block.attentions.0", channels, c.AttentionHeads[^1], c);
        h = Resnet(L, h, emb, "mid_block.resnets.1", channels, channels, temb, c.NormGroups);

        for (int u = 0; u < blocks; u++)
        {
            int b = blocks - 1 - u;
            int outCh = c.BlockOutChannels[b];
            for (int l = 0; l <= c.LayersPerBlock; l++)
            {
                var (skip, skipCh) = skips.Pop();
                h = g.Op("Concat", [h, skip], ("axis", 1));
                h = Resnet(L, h, emb, $"up_blocks.{u}.resnets.{l}", channels + skipCh, outCh, temb, c.NormGroups);
                channels = outCh;
                if (c.CrossAttention[b]) h = Transformer(L, h, context, $"up_blocks.{u}.attentions.{l}", channels, c.AttentionHeads[b], c);
            }
            if (u < blocks - 1)
                h = L.Conv(L.Upsample2x(h), $"up_blocks.{u}.upsamplers.0.conv", channels, channels, 3);
        }

        h = L.SiLU(L.GroupNorm(h, "conv_norm_out", channels, c.NormGroups, 1e-5f));
        h = L.Conv(h, "conv_out", channels, c.OutChannels, 3);
        g.Output("out_sample", h, ft, "batch", c.OutChannels, "height", "width");
    }

    // Timesteps(flip_sin_to_cos=True, shift=0) in float32, cast to the model type, then linear-SiLU-linear.
    private static string TimeEmbedding(OnnxGraphBuilder g, GraphLayers L, string timestep, string sample, int dim, int temb)
    {
        var t = g.Op("Reshape", [g.Op("Cast", [timestep], ("to", (int)TensorProto.Types.DataType.Float)), g.Int64(-1, 1)]);
        var batch = g.Op("Slice", [g.Op("Shape", [sample]), g.Int64(0), g.Int64(1)]);
        t = g.Op("Expand", [t, g.Op("Concat", [batch, g.Int64(1)], ("axis", 0))]);
        int half = dim / 2;
        var freqs = Enumerable.Range(0, half).Select(i => (float)Math.Exp(-Math.Log(10000) * i / half)).ToArray();
        var args = g.Op("Mul", [t, g.Float32(freqs, [1, half])]);
        var emb = g.Op("Concat", [g.Op("Cos", [args]), g.Op("Sin", [args])], ("axis", 1));
        if (g.Half) emb = g.Op("Cast", [emb], ("to", (int)TensorProto.Types.DataType.Float16));
        emb = L.Linear(emb, "time_embedding.linear_1", dim, temb);
        return L.Linear(L.SiLU(emb), "time_embedding.linear_2", temb, temb);
    }

    private static string Resnet(GraphLayers L, string x, string emb, string name, int cin, int cout, int temb, int groups)
    {
        var g = L.Graph;
        var h = L.Conv(L.SiLU(L.GroupNorm(x, $"{name}.norm1", cin, groups, 1e-5f)), $"{name}.conv1", cin, cout, 3);
        var t = L.Linear(L.SiLU(emb), $"{name}.time_emb_proj", temb, cout);
        h = g.Op("Add", [h, g.Op("Unsqueeze", [t, g.Int64(2, 3)])]);
        h = L.Conv(L.SiLU(L.GroupNorm(h, $"{name}.norm2", cout, groups, 1e-5f)), $"{name}.conv2", cout, cout, 3, gain: GraphLayers.ResidualGain);
        var shortcut = cin == cout ? x : L.Conv(x, $"{name}.conv_shortcut", cin, cout, 1);
        return g.Op("Add", [shortcut, h]);
    }

    private static string Transformer(GraphLayers L, string x, string context, string name, int channels, int headsOrDim, UNetConfig c)
    {
        var g = L.Graph;
        // SD 1.x's config calls the head count "attention_head_dim" (8); SD 2.x gives per-block head counts.
        int heads = headsOrDim;
        var h = L.GroupNorm(x, $"{name}.norm", channels, c.NormGroups, 1e-6f);
        string tokens;
        if (c.UseLinearProjection) tokens = L.Linear(L.ToTokens(h), $"{name}.proj_in", channels, channels);
        else tokens = L.ToTokens(L.Conv(h, $"{name}.proj_in", channels, channels, 1));

        string block = $"{name}.transformer_blocks.0";
        tokens = g.Op("Add", [tokens, SelfAttention(L, tokens, block, channels, heads)]);
        tokens = g.Op("Add", [tokens, L.Attention(L.LayerNorm(tokens, $"{block}.norm2", channels), context, $"{block}.attn2", channels, c.CrossAttentionDim, heads)]);
        var ff = L.Linear(L.LayerNorm(tokens, $"{block}.norm3", channels), $"{block}.ff.net.0.proj", channels, channels * 8);
        var parts = g.Node("Split", [ff, g.Int64(channels * 4, channels * 4)], [g.Fresh("geglu_x"), g.Fresh("geglu_gate")], ("axis", -1));
        ff = g.Op("Mul", [parts[0], L.Gelu(parts[1])]);
        tokens = g.Op("Add", [tokens, L.Linear(ff, $"{block}.ff.net.2", channels * 4, channels, gain: GraphLayers.ResidualGain)]);

        string output = c.UseLinearProjection
            ? L.FromTokens(L.Linear(tokens, $"{name}.proj_out", channels, channels, gain: GraphLayers.ResidualGain), x)
            : L.Conv(L.FromTokens(tokens, x), $"{name}.proj_out", channels, channels, 1, gain: GraphLayers.ResidualGain);
        return g.Op("Add", [output, x]);
    }

    private static string SelfAttention(GraphLayers L, string tokens, string block, int channels, int heads)
    {
        var normed = L.LayerNorm(tokens, $"{block}.norm1", channels);
        return L.Attention(normed, normed, $"{block}.attn1", channels, channels, heads);
    }
}
