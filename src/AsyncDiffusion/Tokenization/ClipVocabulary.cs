using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// A CLIP BPE vocabulary: token strings ↔ ids and the ranked merge list, held as integer pair
/// tables so BPE never builds intermediate strings. Immutable and thread-safe.
/// </summary>
public sealed class ClipVocabulary
{
    /// <summary>Merges used from openai/CLIP's list: 49152 − 256 − 2.</summary>
    public const int OpenAiMergeCount = 48894;

    private static readonly Lazy<ClipVocabulary> OpenAi = new(LoadOpenAiDefault);

    private readonly Dictionary<string, int> _ids;
    private readonly string[] _tokens;
    private readonly Dictionary<(string, string), int> _ranks;

    public string Source { get; }
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    public int Count => _ids.Count;

    private ClipVocabulary(string source, Dictionary<string, int> ids, List<(string, string)> merges)
    {
        Source = source;
        _ids = ids;
        _tokens = new string[ids.Values.Max() + 1];
        foreach (var (token, id) in ids)
        {
            if (id < 0) throw new AsyncDiffusionException($"{source}: token '{token}' has negative id {id}; ids must be 0 or more.");
            _tokens[id] = token;
        }
        Merges = merges;
        _ranks = new Dictionary<(string, string), int>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++) _ranks.TryAdd(merges[rank], rank); // a repeated pair keeps its best rank
    }

    /// <summary>Rank of merging <paramref name="left"/> with <paramref name="right"/> (lower merges first), or false.</summary>
    internal bool TryGetRank(string left, string right, out int rank) => _ranks.TryGetValue((left, right), out rank);

    public bool TryGetId(string token, out int id) => _ids.TryGetValue(token, out id);

    public string? TokenOf(int id) => id >= 0 && id < _tokens.Length ? _tokens[id] : null;

    /// <summary>CLIP's standard vocabulary (openai/CLIP's MIT-licensed merge list, shipped in this library).</summary>
    public static ClipVocabulary OpenAiDefault => OpenAi.Value;

    /// <summary>Loads <c>vocab.json</c> and <c>merges.txt</c> from a tokenizer folder.</summary>
    public static ClipVocabulary Load(string folder)
    {
        string vocabPath = Path.Combine(folder, "vocab.json");
        string mergesPath = Path.Combine(folder, "merges.txt");
        if (!Directory.Exists(folder))
            throw new AsyncDiffusionException($"Tokenizer folder '{folder}' does not exist; expected a folder with vocab.json and merges.txt.");
        foreach (var p in new[] { vocabPath, mergesPath })
            if (!File.Exists(p))
                throw new AsyncDiffusionException($"'{p}' not found; a CLIP tokenizer folder needs vocab.json and merges.txt.");

        var ids = ReadVocabJson(vocabPath);
        var merges = ReadMerges(File.ReadAllText(mergesPath, Encoding.UTF8), mergesPath, int.MaxValue, headerOptional: true);
        return new ClipVocabulary(folder, ids, merges);
    }

    private static Dictionary<string, int> ReadVocabJson(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new AsyncDiffusionException($"'{path}' is not valid JSON ({e.Message}); expected an object mapping token strings to integer ids.");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new AsyncDiffusionException($"'{path}' holds a JSON {doc.RootElement.ValueKind}; expected an object mapping token strings to integer ids.");
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Value.ValueKind != JsonValueKind.Number || !prop.Value.TryGetInt32(out int id))
                    throw new AsyncDiffusionException($"'{path}': token '{prop.Name}' maps to {prop.Value.GetRawText()}; expected an integer id.");
                ids[prop.Name] = id;
            }
            if (ids.Count == 0)
                throw new AsyncDiffusionException($"'{path}' is an empty vocabulary; expected a CLIP vocabulary (49,408 entries for Stable Diffusion).");
            return ids;
        }
    }

    private static List<(string, string)> ReadMerges(string text, string path, int limit, bool headerOptional)
    {
        var merges = new List<(string, string)>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length && merges.Count < limit; i++)
        {
            string line = lines[i].TrimEnd('\r');
            bool header = i == 0 && (!headerOptional || line.StartsWith("#version", StringComparison.Ordinal));
            if (line.Length == 0 || header) continue;
            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new AsyncDiffusionException($"'{path}' line {i + 1}: '{Shorten(line)}' is not a merge; expected two symbols separated by one space.");
            merges.Add((parts[0], parts[1]));
        }
        if (merges.Count == 0)
            throw new AsyncDiffusionException($"'{path}' holds no merges; expected a '#version' header and one 'left right' pair per line.");
        return merges;
    }

    private static string Shorten(string s) => s.Length > 60 ? s[..60] + "…" : s;

    /// <summary>Derives vocab and merges from openai/CLIP's <c>bpe_simple_vocab_16e6.txt.gz</c>, as Hugging Face's files were.</summary>
    internal static ClipVocabulary FromOpenAiMergeList(Stream gzip, string source)
    {
        string text;
        using (var gz = new GZipStream(gzip, CompressionMode.Decompress))
        using (var reader = new StreamReader(gz, Encoding.UTF8))
            text = reader.ReadToEnd();
        // Line 0 is a header; the next 48,894 lines are the merges used.
        var merges = ReadMerges(text, source, OpenAiMergeCount, headerOptional: false);

        var ids = new Dictionary<string, int>(49408, StringComparer.Ordinal);
        var symbols = ByteSymbols.InVocabularyOrder().Select(c => c.ToString()).ToList();
        foreach (var s in symbols) ids.Add(s, ids.Count);
        foreach (var s in symbols) ids.Add(s + ByteSymbols.EndOfWord, ids.Count);
        foreach (var (l, r) in merges) ids.TryAdd(l + r, ids.Count);
        ids.Add(ClipPreTokenizer.StartOfText, ids.Count);
        ids.Add(ClipPreTokenizer.EndOfText, ids.Count);
        return new ClipVocabulary(source, ids, merges);
    }

    private static ClipVocabulary LoadOpenAiDefault()
    {
        const string name = "AsyncDiffusion.Tokenization.bpe_simple_vocab_16e6.txt.gz";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Resource {name} is missing from the AsyncDiffusion assembly.");
        return FromOpenAiMergeList(stream, "built-in CLIP vocabulary");
    }

    /// <summary>Writes Hugging Face-style <c>vocab.json</c> and <c>merges.txt</c> (byte-identical to the SD 1.x tokenizer's for the default vocabulary).</summary>
    public void WriteTo(string folder)
    {
        Directory.CreateDirectory(folder);
        var sb = new StringBuilder(1 << 20);
        sb.Append('{');
        bool first = true;
        foreach (var (token, id) in _ids.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!first) sb.Append(", ");
            first = false;
            sb.Append('"');
            foreach (char c in token)
            {
                if (c is '"' or '\\') sb.Append('\\');
                if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                else sb.Append(c);
            }
            sb.Append("\": ").Append(id);
        }
        sb.Append('}');
        var utf8 = new UTF8Encoding(false);
        File.WriteAllText(Path.Combine(folder, "vocab.json"), sb.ToString(), utf8);

        sb.Clear().Append("#version: 0.2\n");
        foreach (var (l, r) in Merges) sb.Append(l).Append(' ').Append(r).Append('\n');
        File.WriteAllText(Path.Combine(folder, "merges.txt"), sb.ToString(), utf8);
    }
}
