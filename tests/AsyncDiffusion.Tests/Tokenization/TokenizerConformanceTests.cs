using System.Text.Json;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Tests.Tokenization;

/// <summary>Replays every tokenizer vector in ../shared/data/clip (and the extra-cases folder).</summary>
public class TokenizerConformanceTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in SharedData.CaseFiles("clip", "tokenizer_cases"))
        {
            int n = SharedData.Load(file).GetProperty("cases").GetArrayLength();
            for (int i = 0; i < n; i++) data.Add(file, i);
        }
        return data;
    }

    private static readonly ClipTokenizer FromSharedFiles = ClipTokenizer.Load(SharedData.PathOf("data", "clip"));

    [Theory]
    [MemberData(nameof(Cases))]
    public void BuiltInTokenizerMatchesReference(string file, int index) => Check(ClipTokenizer.Default, file, index);

    [Theory]
    [MemberData(nameof(Cases))]
    public void TokenizerLoadedFromVocabFilesMatchesReference(string file, int index) => Check(FromSharedFiles, file, index);

    private static void Check(ClipTokenizer tokenizer, string file, int index)
    {
        var c = SharedData.Load(file).GetProperty("cases")[index];
        string prompt = c.GetProperty("prompt").GetString()!;
        var result = tokenizer.Encode(prompt);

        Assert.Equal(Ints(c.GetProperty("ids")), result.Ids);
        Assert.Equal(Ints(c.GetProperty("input_ids_77")), result.InputIds);
        if (c.TryGetProperty("tokens", out var tokens))
        {
            // Reference tokens cover the content only or include the specials; compare the content.
            var expected = tokens.EnumerateArray().Select(t => t.GetString()!).ToArray();
            var got = result.Tokens;
            if (expected.Length == got.Length - 2) got = got[1..^1];
            Assert.Equal(expected, got);
        }
        bool truncated = c.TryGetProperty("truncated", out var t) && t.GetBoolean();
        Assert.Equal(truncated, result.Truncated);
        Assert.Equal(truncated, result.Dropped.Length > 0);
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
}
