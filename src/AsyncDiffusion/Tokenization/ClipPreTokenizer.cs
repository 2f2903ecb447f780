using System.Globalization;
using System.Text;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// CLIP's split pattern, matched case-insensitively and by code point:
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>.
/// Written by hand because .NET's regex classes see UTF-16 units, not code points
/// (letters and digits outside the BMP would be split), and because case-insensitive
/// matching has two corner cases (long s as 's', U+0345 matching nothing).
/// </summary>
public static class ClipPreTokenizer
{
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";
    private static readonly string[] Contractions = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };

    /// <summary>Splits normalised text into the pieces the BPE runs on.</summary>
    public static List<string> Split(string text)
    {
        var pieces = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int len = MatchAt(text, i);
            if (len > 0)
            {
                pieces.Add(text.Substring(i, len));
                i += len;
            }
            else
            {
                i += Rune.GetRuneAt(text, i).Utf16SequenceLength;
            }
        }
        return pieces;
    }

    /// <summary>The special token a piece spells (<see cref="StartOfText"/> or <see cref="EndOfText"/>), or null.</summary>
    public static string? SpecialTokenOf(string piece)
    {
        if (piece.Length == StartOfText.Length && MatchesLiteral(piece, 0, StartOfText)) return StartOfText;
        if (piece.Length == EndOfText.Length && MatchesLiteral(piece, 0, EndOfText)) return EndOfText;
        return null;
    }

    private static int MatchAt(string s, int i)
    {
        if (MatchesLiteral(s, i, StartOfText)) return StartOfText.Length;
        if (MatchesLiteral(s, i, EndOfText)) return EndOfText.Length;
        foreach (var c in Contractions)
            if (MatchesLiteral(s, i, c)) return c.Length;

        var first = Rune.GetRuneAt(s, i);
        var kind = Classify(first);
        switch (kind)
        {
            case CharKind.Letter:
            {
                int j = i + first.Utf16SequenceLength;
                while (j < s.Length && Classify(Rune.GetRuneAt(s, j)) == CharKind.Letter) j += Rune.GetRuneAt(s, j).Utf16SequenceLength;
                return j - i;
            }
            case CharKind.Number:
                return first.Utf16SequenceLength;
            case CharKind.Other:
            {
                int j = i + first.Utf16SequenceLength;
                while (j < s.Length && Classify(Rune.GetRuneAt(s, j)) == CharKind.Other) j += Rune.GetRuneAt(s, j).Utf16SequenceLength;
                return j - i;
            }
            default:
                return 0;
        }
    }

    // Case-insensitive literal match. After lower-casing, the only character that folds onto
    // one of these ASCII letters is U+017F (long s), which folds to 's'.
    private static bool MatchesLiteral(string s, int i, string literal)
    {
        if (i + literal.Length > s.Length) return false;
        for (int k = 0; k < literal.Length; k++)
        {
            char c = s[i + k], l = literal[k];
            if (c == l || char.ToLowerInvariant(c) == l) continue;
            if (l == 's' && c == '\u017F') continue;
            return false;
        }
        return true;
    }

    private enum CharKind { Space, Letter, Number, Other, Unmatched }

    private static CharKind Classify(Rune r)
    {
        if (PythonText.IsSpace(r.Value)) return CharKind.Space;
        // U+0345 case-folds to iota: under IGNORECASE it is excluded from the negated class
        // but is no letter itself, so no alternative matches it and it is skipped.
        if (r.Value == 0x345) return CharKind.Unmatched;
        switch (Rune.GetUnicodeCategory(r))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return CharKind.Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return CharKind.Number;
            default:
                return CharKind.Other;
        }
    }
}
