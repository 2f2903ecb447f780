using System.Text.Json;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// Special tokens and length of a CLIP tokenizer, as a diffusers tokenizer folder configures them
/// (<c>tokenizer_config.json</c>, overridden by <c>special_tokens_map.json</c>).
/// SD 1.x pads with <c>&lt;|endoftext|&gt;</c>; SD 2.x configures <c>"!"</c> (id 0).
/// </summary>
public sealed record ClipTokenizerSettings(string BosToken, string EosToken, string PadToken, string UnkToken, int MaxLength)
{
    public static ClipTokenizerSettings Default { get; } = new(ClipPreTokenizer.StartOfText, ClipPreTokenizer.EndOfText, ClipPreTokenizer.EndOfText, ClipPreTokenizer.EndOfText, 77);

    public static ClipTokenizerSettings Load(string folder)
    {
        var s = Default;
        foreach (var file in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            string path = Path.Combine(folder, file);
            if (!File.Exists(path)) continue;
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            }
            catch (JsonException e)
            {
                throw new AsyncDiffusionException($"'{path}' is not valid JSON ({e.Message}).");
            }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new AsyncDiffusionException($"'{path}' holds a JSON {doc.RootElement.ValueKind}; expected an object.");
                var root = doc.RootElement;
                s = s with
                {
                    BosToken = TokenField(root, "bos_token", path) ?? s.BosToken,
                    EosToken = TokenField(root, "eos_token", path) ?? s.EosToken,
                    PadToken = TokenField(root, "pad_token", path) ?? s.PadToken,
                    UnkToken = TokenField(root, "unk_token", path) ?? s.UnkToken,
                };
                if (root.TryGetProperty("model_max_length", out var len))
                {
                    // Unset configs carry a huge sentinel (1e30): keep CLIP's 77 then.
                    if (len.ValueKind != JsonValueKind.Number || !len.TryGetDouble(out double v) || v < 3)
                        throw new AsyncDiffusionException($"'{path}': model_max_length is {len.GetRawText()}; expected an integer of at least 3 (77 for CLIP).");
                    if (v <= 4096) s = s with { MaxLength = (int)v };
                }
            }
        }
        return s;
    }

    // A token is written as a string or as {"content": "..."} (AddedToken).
    private static string? TokenField(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) return c.GetString();
        throw new AsyncDiffusionException($"'{path}': {name} is {v.GetRawText()}; expected a token string or an object with a \"content\" string.");
    }
}
