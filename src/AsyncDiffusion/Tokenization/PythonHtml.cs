using System.Globalization;
using System.Reflection;
using System.Text;

namespace AsyncDiffusion.Tokenization;

/// <summary>
/// Python's <c>html.unescape</c>, reproduced exactly: HTML5 named references (with the legacy
/// names accepted without ';' and the longest-prefix rule), decimal and hex references with or
/// without ';', the Windows-1252 remapping of C1 references, U+FFFD for surrogates and
/// out-of-range numbers, and removal of invalid code points. .NET's WebUtility.HtmlDecode
/// differs on all of these, and CLIP's text cleaning runs this function twice.
/// </summary>
public static class PythonHtml
{
    private const int MaxNameLength = 32;
    private static readonly Lazy<Dictionary<string, string>> Entities = new(LoadEntities);

    public static string Unescape(string text)
    {
        if (!text.Contains('&')) return text;
        var sb = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '&' && TryReplaceReference(text, i + 1, sb, out int next))
            {
                i = next;
                continue;
            }
            sb.Append(c);
            i++;
        }
        return sb.ToString();
    }

    /// <summary>Matches <c>&amp;(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f &lt;&amp;#;]{1,32};?)</c> at <paramref name="start"/>.</summary>
    private static bool TryReplaceReference(string s, int start, StringBuilder sb, out int next)
    {
        next = start;
        if (start >= s.Length) return false;
        if (s[start] == '#')
        {
            int p = start + 1;
            bool hex = p < s.Length && (s[p] == 'x' || s[p] == 'X');
            int digitsStart = hex ? p + 1 : p;
            int q = digitsStart;
            while (q < s.Length && (hex ? char.IsAsciiHexDigit(s[q]) : char.IsAsciiDigit(s[q]))) q++;
            if (q == digitsStart)
            {
                // "&#x" without digits: the pattern's third branch cannot start with '#', so no match.
                return false;
            }
            string digits = s[digitsStart..q];
            if (q < s.Length && s[q] == ';') q++;
            next = q;
            sb.Append(NumericReference(digits, hex));
            return true;
        }

        // Named reference: up to 32 code points that are not \t \n \f space < & # ;
        int end = start, count = 0;
        while (end < s.Length && count < MaxNameLength)
        {
            char c = s[end];
            if (c is '\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';') break;
            end += char.IsHighSurrogate(c) && end + 1 < s.Length && char.IsLowSurrogate(s[end + 1]) ? 2 : 1;
            count++;
        }
        if (count == 0) return false;
        if (end < s.Length && s[end] == ';') end++;
        next = end;
        string name = s[start..end];
        var table = Entities.Value;
        if (table.TryGetValue(name, out var value))
        {
            sb.Append(value);
            return true;
        }
        // Longest prefix (at least 2 characters) that is a known name, rest kept as text.
        for (int x = name.Length - 1; x > 1; x--)
        {
            if (table.TryGetValue(name[..x], out value))
            {
                sb.Append(value).Append(name, x, name.Length - x);
                return true;
            }
        }
        sb.Append('&').Append(name);
        return true;
    }

    private static string NumericReference(string digits, bool hex)
    {
        // Python ints are unbounded: any number past U+10FFFF becomes U+FFFD.
        digits = digits.TrimStart('0');
        long num;
        if (digits.Length == 0) num = 0;
        else if (digits.Length > 8) num = long.MaxValue;
        else num = long.Parse(digits, hex ? NumberStyles.AllowHexSpecifier : NumberStyles.None, CultureInfo.InvariantCulture);

        if (num < InvalidCharRefs.Length && InvalidCharRefs[num] is { } mapped) return mapped;
        if (num is >= 0xD800 and <= 0xDFFF || num > 0x10FFFF) return "\uFFFD";
        if (IsInvalidCodePoint((int)num)) return "";
        return char.ConvertFromUtf32((int)num);
    }

    private static bool IsInvalidCodePoint(int cp) =>
        cp is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or >= 0x7F and <= 0x9F or >= 0xFDD0 and <= 0xFDEF
        || (cp & 0xFFFE) == 0xFFFE;

    // Python's html._invalid_charrefs: NUL, CR and the C1 range as Windows-1252.
    private static readonly string?[] InvalidCharRefs = BuildInvalidCharRefs();

    private static string?[] BuildInvalidCharRefs()
    {
        var map = new string?[0xA0];
        map[0x00] = "\uFFFD";
        map[0x0D] = "\r";
        int[] c1 =
        {
            0x20AC, 0x81, 0x201A, 0x192, 0x201E, 0x2026, 0x2020, 0x2021, 0x2C6, 0x2030, 0x160, 0x2039, 0x152, 0x8D, 0x17D, 0x8F,
            0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x2DC, 0x2122, 0x161, 0x203A, 0x153, 0x9D, 0x17E, 0x178,
        };
        for (int i = 0; i < c1.Length; i++) map[0x80 + i] = char.ConvertFromUtf32(c1[i]);
        return map;
    }

    private static Dictionary<string, string> LoadEntities()
    {
        // WHATWG HTML named character references (name TAB code points in hex).
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("AsyncDiffusion.Tokenization.html5_entities.tsv")
            ?? throw new InvalidOperationException("The HTML entity table is missing from the AsyncDiffusion assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var table = new Dictionary<string, string>(StringComparer.Ordinal);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            int tab = line.IndexOf('\t');
            var sb = new StringBuilder();
            foreach (var hex in line[(tab + 1)..].Split(' '))
                sb.Append(char.ConvertFromUtf32(int.Parse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)));
            table[line[..tab]] = sb.ToString();
        }
        return table;
    }
}
