using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>A CLIPTextModel configuration.</summary>
public sealed record ClipTextConfig(int VocabSize, int Hidden, int Layers, int Heads, int Intermediate, int MaxPositions, bool QuickGelu)
{
    /// <summary>openai/clip-vit-large-patch14, SD 1.x's text encoder.</summary>
    public static ClipTextConfig Sd15 { get; } = new(49408, 768, 12, 12, 3072, 77, true);

    /// <summary>OpenCLIP ViT-H/14 as SD 2.x uses it (23 of 24 layers, GELU).</summary>
    public static ClipTextConfig Sd2 { get; } = new(49408, 1024, 23, 16, 4096, 77, false);
}

/// <summary>
/// Writes a CLIP text transformer: token and position embeddings, pre-norm causal self-attention
/// layers with a (quick-)GELU MLP, final LayerNorm; <c>pooler_output</c> is the state at the
/// first end-of-text token (the highest id, found with ArgMax as transformers does).
/// </summary>
internal static class ClipTextGraph
{
    public static void Build(OnnxGraphBuilder g, ClipTextConfig c, ContractVintage vintage)
    {
        var L = new GraphLayers(g);
        var ids = g.Input("input_ids", vintage.InputIdsType, "batch", "sequence");
        var ids64 = g.Op("Cast", [ids], ("to", (int)TensorProto.Types.DataType.Int64));
        var tokenTable = g.Parameter("text_model.embeddings.token_embedding.weight", [c.VocabSize, c.Hidden], 0.02);
        var positionTable = g.Parameter("text_model.embeddings.position_embedding.weight", [c.MaxPositions, c.Hidden], 0.01);

        var seq = g.Op("Slice", [g.Op("Shape", [ids]), g.Int64(1), g.Int64(2)]);
        var positions = g.Op("Slice", [positionTable, g.Int64(0), seq, g.Int64(0)]);
        var h = g.Op("Add", [g.Op("Gather", [tokenTable, ids64], ("axis", 0)), positions]);

        // Causal mask: −∞ (a large negative number) above the diagonal, sliced to the sequence length.
        var mask = new float[c.MaxPositions * c.MaxPositions];
        for (int i = 0; i < c.MaxPositions; i++)
            for (int j = i + 1; j < c.MaxPositions; j++) mask[i * c.MaxPositions + j] = g.Half ? -65000f : -1e9f;
        var full = g.Parameter("causal_mask", [c.MaxPositions, c.MaxPositions], mask);
        var causal = g.Op("Slice", [full, g.Int64(0, 0), g.Op("Concat", [seq, seq], ("axis", 0)), g.Int64(0, 1)]);

        for (int l = 0; l < c.Layers; l++)
        {
            string layer = $"text_model.encoder.layers.{l}";
            var normed = L.LayerNorm(h, $"{layer}.layer_norm1", c.Hidden);
            h = g.Op("Add", [h, L.Attention(normed, normed, $"{layer}.self_attn", c.Hidden, c.Hidden, c.Heads, "q_proj", "k_proj", "v_proj", "out_proj", qkvBias: true, mask: causal)]);
            var mlp = L.Linear(L.LayerNorm(h, $"{layer}.layer_norm2", c.Hidden), $"{layer}.mlp.fc1", c.Hidden, c.Intermediate);
            mlp = c.QuickGelu ? L.QuickGelu(mlp) : L.Gelu(mlp);
            h = g.Op("Add", [h, L.Linear(mlp, $"{layer}.mlp.fc2", c.Intermediate, c.Hidden, gain: GraphLayers.ResidualGain)]);
        }
        h = L.LayerNorm(h, "text_model.final_layer_norm", c.Hidden);
        g.Output("last_hidden_state", h, g.FloatType, "batch", "sequence", c.Hidden);

        var eos = g.Op("ArgMax", [g.Op("Cast", [ids], ("to", (int)TensorProto.Types.DataType.Float))], ("axis", 1), ("keepdims", 1));
        var pooled = g.Op("GatherND", [h, eos], ("batch_dims", 1));
        g.Output("pooler_output", pooled, g.FloatType, "batch", c.Hidden);
    }
}
