namespace AsyncDiffusion.Tokenization;

/// <summary>
/// GPT-2/CLIP byte-level symbols: each byte value gets one printable character, so BPE can run
/// on strings. Printable Latin-1 bytes map to themselves; the other 68 map to U+0100.. in order.
/// </summary>
public static class ByteSymbols
{
    public const string EndOfWord = "</w>";

    /// <summary>Symbol character for each byte value.</summary>
    public static readonly char[] ForByte = Build();

    private static readonly Dictionary<char, byte> ToByte = ForByte.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    /// <summary>The 256 byte symbols in vocabulary order: printable bytes first, then the remapped ones.</summary>
    public static IEnumerable<char> InVocabularyOrder()
    {
        for (int b = 0; b < 256; b++) if (IsPrintable(b)) yield return (char)b;
        for (int b = 0; b < 256; b++) if (!IsPrintable(b)) yield return ForByte[b];
    }

    public static bool TryGetByte(char symbol, out byte value) => ToByte.TryGetValue(symbol, out value);

    private static bool IsPrintable(int b) => b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] Build()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = IsPrintable(b) ? (char)b : (char)(0x100 + next++);
        return map;
    }
}
