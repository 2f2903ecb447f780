using System.Text.Json;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>
/// Reads a diffusers folder's component configs into the architectures the graph builder takes,
/// refusing settings it does not build (SDXL's added embeddings, LCM's guidance embedding, more
/// than one transformer layer per block).
/// </summary>
internal static class DiffusersConfigs
{
    public static JsonElement Read(string path)
    {
        if (!File.Exists(path)) throw new ModelFolderException($"'{path}' not found; a diffusers folder describes each component in its config.json.");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelFolderException($"'{path}' holds a JSON {doc.RootElement.ValueKind}; expected an object.");
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{path}' is not valid JSON ({e.Message}).");
        }
    }

    public static UNetConfig UNet(JsonElement c, string path)
    {
        foreach (var key in new[] { "addition_embed_type", "class_embed_type", "time_cond_proj_dim", "encoder_hid_dim" })
            if (c.TryGetProperty(key, out var v) && v.ValueKind is not JsonValueKind.Null)
                throw new ModelFolderException($"'{path}' sets {key} = {v.GetRawText()}: that UNet (SDXL, an upscaler or an LCM-distilled model) is not supported; supported: SD 1.x and SD 2.x UNets.");
        if (c.TryGetProperty("transformer_layers_per_block", out var tl) && !(tl.ValueKind == JsonValueKind.Number && tl.GetInt32() == 1))
            throw new ModelFolderException($"'{path}' sets transformer_layers_per_block = {tl.GetRawText()} (SDXL-style); supported: 1.");
        var blocks = Ints(c, "block_out_channels", path);
        var down = Strings(c, "down_block_types", path);
        if (down.Length != blocks.Length) throw new ModelFolderException($"'{path}': down_block_types has {down.Length} entries but block_out_channels {blocks.Length}.");
        int layers = Int(c, "layers_per_block", path, 2);
        int cross = Int(c, "cross_attention_dim", path, 768);
        // diffusers reads attention_head_dim as the head count when num_attention_heads is absent (SD 1.x: 8; SD 2.x: [5, 10, 20, 20]).
        var heads = c.TryGetProperty("num_attention_heads", out var nh) && nh.ValueKind != JsonValueKind.Null ? PerBlock(nh, blocks.Length, path, "num_attention_heads")
            : c.TryGetProperty("attention_head_dim", out var hd) ? PerBlock(hd, blocks.Length, path, "attention_head_dim") : Enumerable.Repeat(8, blocks.Length).ToArray();
        bool linear = c.TryGetProperty("use_linear_projection", out var lp) && lp.ValueKind == JsonValueKind.True;
        return new UNetConfig(blocks, down.Select(d => d.StartsWith("CrossAttn", StringComparison.Ordinal)).ToArray(), layers, cross, heads, linear,
            Int(c, "norm_num_groups", path, 32), Int(c, "sample_size", path, 64), Int(c, "in_channels", path, 4), Int(c, "out_channels", path, 4));
    }

    public static ClipTextConfig Text(JsonElement c, string path)
    {
        string act = c.TryGetProperty("hidden_act", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "quick_gelu";
        if (act is not ("quick_gelu" or "gelu"))
            throw new ModelFolderException($"'{path}': hidden_act '{act}' is not supported; expected quick_gelu (SD 1.x) or gelu (SD 2.x).");
        return new ClipTextConfig(Int(c, "vocab_size", path, 49408), Int(c, "hidden_size", path, 768), Int(c, "num_hidden_layers", path, 12),
            Int(c, "num_attention_heads", path, 12), Int(c, "intermediate_size", path, 3072), Int(c, "max_position_embeddings", path, 77), act == "quick_gelu");
    }

    public static VaeConfig Vae(JsonElement c) =>
        new(Ints(c, "block_out_channels", "vae/config.json"), Int(c, "layers_per_block", "vae/config.json", 2), Int(c, "latent_channels", "vae/config.json", 4),
            Int(c, "norm_num_groups", "vae/config.json", 32),
            c.TryGetProperty("scaling_factor", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetDouble() : 0.18215);

    /// <summary>The shard files a <c>*.safetensors.index.json</c> names.</summary>
    public static IEnumerable<string> Shards(string indexPath)
    {
        var index = Read(indexPath);
        if (!index.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new ModelFolderException($"'{indexPath}' has no weight_map object.");
        var files = map.EnumerateObject().Select(p => p.Value.GetString() ?? "").Distinct().Order().ToList();
        foreach (var f in files)
            if (f.Length == 0 || f.Contains('/') || f.Contains('\\') || f.Contains(".."))
                throw new ModelFolderException($"'{indexPath}' names shard '{f}'; expected a file name in the same folder.");
        return files;
    }

    private static int Int(JsonElement c, string key, string path, int fallback)
    {
        if (!c.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) ? n : throw new ModelFolderException($"'{path}': {key} is {v.GetRawText()}; expected an integer.");
    }

    private static int[] Ints(JsonElement c, string key, string path)
    {
        if (!c.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            throw new ModelFolderException($"'{path}' has no {key} list.");
        return v.EnumerateArray().Select(e => e.TryGetInt32(out int n) ? n : throw new ModelFolderException($"'{path}': {key} holds {e.GetRawText()}; expected integers.")).ToArray();
    }

    private static string[] Strings(JsonElement c, string key, string path)
    {
        if (!c.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.Array)
            throw new ModelFolderException($"'{path}' has no {key} list.");
        return v.EnumerateArray().Select(e => e.GetString() ?? "").ToArray();
    }

    private static int[] PerBlock(JsonElement v, int blocks, string path, string key) => v.ValueKind switch
    {
        JsonValueKind.Number => Enumerable.Repeat(v.GetInt32(), blocks).ToArray(),
        JsonValueKind.Array when v.GetArrayLength() == blocks => v.EnumerateArray().Select(e => e.GetInt32()).ToArray(),
        _ => throw new ModelFolderException($"'{path}': {key} is {v.GetRawText()}; expected a number or one per block ({blocks})."),
    };
}
