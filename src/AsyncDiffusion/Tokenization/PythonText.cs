using System.Globalization;
using System.Text;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// The Python <c>str</c> operations CLIP's text cleaning relies on, where .NET differs:
/// <c>str.isspace</c> (which also counts U+001C..U+001F), <c>str.strip</c>,
/// <c>re.sub(r'\s+', ' ', s)</c> and full Unicode <c>str.lower</c> (İ becomes two characters,
/// capital sigma becomes final sigma at the end of a word).
/// </summary>
public static class PythonText
{
    public static bool IsSpace(int codePoint) => codePoint switch
    {
        >= 0x09 and <= 0x0D => true,
        >= 0x1C and <= 0x20 => true,
        0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>Strips, then replaces each run of whitespace by one ASCII space.</summary>
    public static string CollapseWhitespace(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool pendingSpace = false;
        foreach (char c in text)
        {
            // Every Python whitespace character is in the BMP.
            if (IsSpace(c))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }
            if (pendingSpace) sb.Append(' ');
            pendingSpace = false;
            sb.Append(c);
        }
        return sb.ToString();
    }

    public static string Strip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start])) start++;
        while (end > start && IsSpace(text[end - 1])) end--;
        return text[start..end];
    }

    /// <summary>Python's <c>str.lower()</c>: full lower-case mapping with the Final_Sigma rule.</summary>
    public static string Lower(string text)
    {
        var runes = new List<Rune>(text.Length);
        foreach (var r in text.EnumerateRunes()) runes.Add(r);
        var sb = new StringBuilder(text.Length + 4);
        for (int i = 0; i < runes.Count; i++)
        {
            int cp = runes[i].Value;
            if (cp == 0x130) sb.Append("i\u0307");
            else if (cp == 0x3A3) sb.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else sb.Append(Rune.ToLowerInvariant(runes[i]).ToString());
        }
        return sb.ToString();
    }

    // Final_Sigma: \p{Cased} \p{Case_Ignorable}* Σ !(\p{Case_Ignorable}* \p{Cased})
    private static bool IsFinalSigma(List<Rune> runes, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j])) return false;
        j = i + 1;
        while (j < runes.Count && IsCaseIgnorable(runes[j])) j++;
        return j == runes.Count || !IsCased(runes[j]);
    }

    internal static bool IsCased(Rune r)
    {
        var cat = Rune.GetUnicodeCategory(r);
        if (cat is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter) return true;
        // Other_Lowercase / Other_Uppercase (ª, º, modifier letters, circled letters, Roman numerals)
        // are cased too; most of them have a case mapping, the rest are listed.
        if (Rune.ToLowerInvariant(r) != r || Rune.ToUpperInvariant(r) != r) return true;
        int cp = r.Value;
        return cp is 0xAA or 0xBA or (>= 0x2B0 and <= 0x2B8) or 0x2C0 or 0x2C1 or (>= 0x2E0 and <= 0x2E4) or 0x345 or 0x37A
            or (>= 0x1D2C and <= 0x1D6A) or 0x1D78 or (>= 0x1D9B and <= 0x1DBF) or 0x2071 or 0x207F or (>= 0x2090 and <= 0x209C)
            or (>= 0x2170 and <= 0x217F) or (>= 0x24D0 and <= 0x24E9) or (>= 0x2C7C and <= 0x2C7D) or (>= 0xA69C and <= 0xA69D)
            or 0xA770 or (>= 0xA7F8 and <= 0xA7F9) or (>= 0xAB5C and <= 0xAB5F);
    }

    internal static bool IsCaseIgnorable(Rune r)
    {
        var cat = Rune.GetUnicodeCategory(r);
        if (cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol) return true;
        // Word_Break MidLetter, MidNumLet and Single_Quote.
        return r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
    }
}
