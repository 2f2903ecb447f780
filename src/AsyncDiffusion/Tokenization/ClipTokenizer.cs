using System.Collections.Concurrent;
using System.Text;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// The CLIP byte-level BPE tokenizer Stable Diffusion's text encoder uses, following openai/CLIP's
/// <c>simple_tokenizer</c> exactly (ftfy treated as the identity): double HTML unescape,
/// whitespace collapse, Python lower-casing, CLIP's split pattern, BPE, then the fixed-length
/// <c>input_ids</c> with truncation and padding. Thread-safe.
/// </summary>
public sealed class ClipTokenizer
{
    // Bounds the per-word cache: a server sees arbitrary text, and an unbounded cache is a leak.
    private const int MaxCachedWords = 50_000;

    private readonly ClipVocabulary _vocab;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public ClipTokenizerSettings Settings { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int PadId { get; }

    /// <summary>Id given to a BPE symbol missing from a small vocabulary (CLIP: <c>&lt;|endoftext|&gt;</c>).</summary>
    public int UnkId { get; }
    public int MaxLength => Settings.MaxLength;
    public ClipVocabulary Vocabulary => _vocab;

    public ClipTokenizer(ClipVocabulary vocabulary, ClipTokenizerSettings? settings = null)
    {
        _vocab = vocabulary;
        Settings = settings ?? ClipTokenizerSettings.Default;
        BosId = SpecialId(Settings.BosToken, "bos_token");
        EosId = SpecialId(Settings.EosToken, "eos_token");
        PadId = SpecialId(Settings.PadToken, "pad_token");
        UnkId = SpecialId(Settings.UnkToken, "unk_token");
    }

    private int SpecialId(string token, string field) =>
        _vocab.TryGetId(token, out int id)
            ? id
            : throw new AsyncDiffusionException($"{_vocab.Source}: {field} '{token}' is not in vocab.json; expected a token of the vocabulary.");

    /// <summary>CLIP's standard tokenizer (SD 1.x settings), from the vocabulary shipped with the library.</summary>
    public static ClipTokenizer Default { get; } = new(ClipVocabulary.OpenAiDefault);

    /// <summary>Loads a diffusers <c>tokenizer/</c> folder: vocab.json, merges.txt and, when present, the token configs.</summary>
    public static ClipTokenizer Load(string folder) => new(ClipVocabulary.Load(folder), ClipTokenizerSettings.Load(folder));

    /// <summary>CLIP's text cleaning: HTML unescape twice, strip, collapse whitespace, lower-case.</summary>
    public static string Normalize(string text)
    {
        text = PythonText.Strip(PythonHtml.Unescape(PythonHtml.Unescape(text)));
        return PythonText.Lower(PythonText.CollapseWhitespace(text));
    }

    public TokenizedPrompt Encode(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var content = new List<int>();
        foreach (var piece in ClipPreTokenizer.Split(Normalize(prompt)))
        {
            switch (ClipPreTokenizer.SpecialTokenOf(piece))
            {
                case ClipPreTokenizer.StartOfText: content.Add(BosId); break;
                case ClipPreTokenizer.EndOfText: content.Add(EosId); break;
                default: content.AddRange(Bpe(piece)); break;
            }
        }

        var ids = new int[content.Count + 2];
        ids[0] = BosId;
        content.CopyTo(ids, 1);
        ids[^1] = EosId;

        int keep = Math.Min(content.Count, MaxLength - 2);
        var input = new int[MaxLength];
        Array.Fill(input, PadId);
        input[0] = BosId;
        content.CopyTo(0, input, 1, keep);
        input[keep + 1] = EosId;

        bool truncated = content.Count > keep;
        string dropped = truncated ? Decode(content.Skip(keep)) : "";
        var tokens = ids.Select(id => _vocab.TokenOf(id) ?? "").ToArray();
        return new TokenizedPrompt(ids, input, tokens, truncated, dropped);
    }

    /// <summary>Turns ids back into text, as Hugging Face's <c>decode</c> does (special tokens kept).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var symbols = new StringBuilder();
        foreach (int id in ids) symbols.Append(_vocab.TokenOf(id));
        var bytes = new List<byte>(symbols.Length);
        foreach (char c in symbols.ToString())
            if (ByteSymbols.TryGetByte(c, out byte b)) bytes.Add(b);
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(ByteSymbols.EndOfWord, " ").Trim();
    }

    private int[] Bpe(string piece)
    {
        if (_cache.TryGetValue(piece, out var cached)) return cached;
        var result = Merge(piece).Select(symbol => _vocab.TryGetId(symbol, out int id) ? id : UnkId).ToArray();
        if (_cache.Count >= MaxCachedWords) _cache.Clear();
        _cache.TryAdd(piece, result);
        return result;
    }

    // Byte symbols (the last one marked end-of-word), then repeatedly fuse every occurrence
    // (left to right, no overlap) of the adjacent pair with the best merge rank.
    private List<string> Merge(string piece)
    {
        var bytes = Encoding.UTF8.GetBytes(piece);
        var word = new List<string>(bytes.Length);
        for (int i = 0; i < bytes.Length; i++)
        {
            string symbol = ByteSymbols.ForByte[bytes[i]].ToString();
            word.Add(i == bytes.Length - 1 ? symbol + ByteSymbols.EndOfWord : symbol);
        }

        while (word.Count > 1)
        {
            int bestRank = int.MaxValue, best = -1;
            for (int i = 0; i + 1 < word.Count; i++)
            {
                if (_vocab.TryGetRank(word[i], word[i + 1], out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = i;
                }
            }
            if (best < 0) break;

            string left = word[best], right = word[best + 1];
            var next = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i + 1 < word.Count && word[i] == left && word[i + 1] == right)
                {
                    next.Add(left + right);
                    i++;
                }
                else next.Add(word[i]);
            }
            word = next;
        }
        return word;
    }
}
