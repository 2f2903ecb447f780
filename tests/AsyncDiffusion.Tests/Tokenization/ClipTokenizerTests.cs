using System.Security.Cryptography;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Tests.Tokenization;

public class ClipTokenizerTests
{
    [Theory]
    [InlineData("&amp;amp;", "&amp;")]
    [InlineData("&notit;", "¬it;")]
    [InlineData("&ampx", "&x")]
    [InlineData("&#128;", "€")]
    [InlineData("&#x80", "€")]
    [InlineData("&#0;", "\uFFFD")]
    [InlineData("&#xD800;", "\uFFFD")]
    [InlineData("&#99999999999;", "\uFFFD")]
    [InlineData("&#x81;", "\u0081")]
    [InlineData("&#127;", "")]
    [InlineData("&abc", "&abc")]
    [InlineData("fish &amp chips", "fish & chips")]
    [InlineData("&#65&#x42;C", "ABC")]
    public void HtmlUnescapeFollowsPython(string input, string expected) => Assert.Equal(expected, PythonHtml.Unescape(input));

    [Theory]
    [InlineData("ΣΑ Σ.", "σα σ.")]
    [InlineData("ΑΣ", "ας")]
    [InlineData("ΑΣ'Β", "ασ'β")]
    [InlineData("Σ", "σ")]
    [InlineData("ΑΣ.", "ας.")]
    [InlineData("İ", "i\u0307")]
    [InlineData("ǅ", "ǆ")]
    public void LowerFollowsPython(string input, string expected) => Assert.Equal(expected, PythonText.Lower(input));

    [Fact]
    public void BuiltInVocabularyIsByteIdenticalToTheStableDiffusionTokenizerFiles()
    {
        using var dir = new TempFolder();
        ClipVocabulary.OpenAiDefault.WriteTo(dir.Path);
        Assert.Equal("f3494b2b345fa180ca51ec80ab47d1bbb0218d60089264d5ee9bb0619af4a4b7", Sha256(Path.Combine(dir.Path, "vocab.json")));
        Assert.Equal("9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a", Sha256(Path.Combine(dir.Path, "merges.txt")));
        Assert.Equal(49408, ClipVocabulary.OpenAiDefault.Count);
    }

    [Fact]
    public void LongPromptIsTruncatedTo77AndReportsTheDroppedWords()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 75)) + " and a small dog";
        var result = ClipTokenizer.Default.Encode(prompt);
        Assert.True(result.Truncated);
        Assert.Equal("and a small dog", result.Dropped);
        Assert.Equal(77, result.InputIds.Length);
        Assert.Equal(49407, result.InputIds[^1]);
        Assert.Equal(75 + 4 + 2, result.Ids.Length);
    }

    [Fact]
    public void PadTokenIsReadFromTheTokenizerConfig()
    {
        // SD 2.x tokenizer folders configure "!" (id 0) as the pad token.
        using var dir = new TempFolder();
        ClipVocabulary.OpenAiDefault.WriteTo(dir.Path);
        dir.File("special_tokens_map.json", """{"bos_token": {"content": "<|startoftext|>"}, "eos_token": "<|endoftext|>", "pad_token": "!"}""");
        dir.File("tokenizer_config.json", """{"model_max_length": 77, "pad_token": "<|endoftext|>"}""");
        var sd2 = ClipTokenizer.Load(dir.Path);
        var sd1 = ClipTokenizer.Default;
        var a = sd2.Encode("a photo of a cat").InputIds;
        var b = sd1.Encode("a photo of a cat").InputIds;
        Assert.Equal(0, sd2.PadId);
        Assert.Equal(b.Take(7), a.Take(7));
        Assert.All(a.Skip(7), id => Assert.Equal(0, id));
        // OpenCLIP's behaviour: "!" in the prompt is an ordinary token, not the pad id.
        Assert.Equal(new[] { 49406, 256, 748, 995, 49407 }, sd2.Encode("! !! !!!").Ids);
    }

    [Fact]
    public void MissingVocabularyFileIsAClearError()
    {
        using var dir = new TempFolder();
        dir.File("merges.txt", "#version: 0.2\ni n\n");
        var e = Assert.Throws<AsyncDiffusionException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Contains("vocab.json", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void CorruptVocabularyNamesTheFileAndWhatIsExpected()
    {
        using var dir = new TempFolder();
        dir.File("vocab.json", "{\"a\": 1, ");
        dir.File("merges.txt", "#version: 0.2\n");
        var e = Assert.Throws<AsyncDiffusionException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Contains("vocab.json", e.Message);
        Assert.Contains("not valid JSON", e.Message);

        dir.File("vocab.json", "{\"a\": \"one\"}");
        e = Assert.Throws<AsyncDiffusionException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Contains("expected an integer id", e.Message);
    }

    [Fact]
    public void MalformedMergeLineNamesTheLine()
    {
        using var dir = new TempFolder();
        ClipVocabulary.OpenAiDefault.WriteTo(dir.Path);
        dir.File("merges.txt", "#version: 0.2\ni n\nthis line has three\n");
        var e = Assert.Throws<AsyncDiffusionException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Contains("merges.txt' line 3", e.Message);
    }

    [Fact]
    public void SymbolsMissingFromASmallVocabularyBecomeTheUnknownToken()
    {
        // As Hugging Face's CLIPTokenizer does: tiny test tokenizers lack most byte symbols.
        using var dir = new TempFolder();
        dir.File("vocab.json", """{"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "c": 3, "at</w>": 4}""");
        dir.File("merges.txt", "#version: 0.2\na t</w>\n");
        var tokenizer = ClipTokenizer.Load(dir.Path);
        Assert.Equal(new[] { 0, 2, 3, 4, 1, 1 }, tokenizer.Encode("a cat b").Ids);
    }

    [Fact]
    public void TokenizerIsSafeToShareAcrossThreads()
    {
        var prompts = Enumerable.Range(0, 200).Select(i => $"prompt number {i} with words{i % 13} and ünïcödé {i * 7}").ToArray();
        var expected = prompts.Select(p => ClipTokenizer.Default.Encode(p).Ids).ToArray();
        var tokenizer = new ClipTokenizer(ClipVocabulary.OpenAiDefault);
        var got = new int[prompts.Length][];
        Parallel.For(0, prompts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => got[i] = tokenizer.Encode(prompts[i]).Ids);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], got[i]);
    }

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
}
