using System.Globalization;
using System.Text;

namespace AsyncDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's "infotext": the prompt, a <c>Negative prompt:</c> line, then
/// <c>Key: value</c> pairs. Stored in PNGs as the <c>parameters</c> text chunk so A1111's PNG
/// Info, civitai and other tools read our images.
/// </summary>
public static class Infotext
{
    public static string Format(string prompt, string negativePrompt, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var sb = new StringBuilder(prompt);
        if (!string.IsNullOrEmpty(negativePrompt)) sb.Append("\nNegative prompt: ").Append(negativePrompt);
        sb.Append('\n').Append(string.Join(", ", parameters.Select(p => $"{p.Key}: {Quote(p.Value)}")));
        return sb.ToString();
    }

    /// <summary>Splits infotext back into prompt, negative prompt and parameters.</summary>
    public static (string Prompt, string NegativePrompt, Dictionary<string, string> Parameters) Parse(string text)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n').ToList();
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        if (lines.Count > 0 && LooksLikeParameters(lines[^1]))
        {
            foreach (var (k, v) in SplitPairs(lines[^1])) parameters[k] = v;
            lines.RemoveAt(lines.Count - 1);
        }
        int negative = lines.FindIndex(l => l.StartsWith("Negative prompt:", StringComparison.Ordinal));
        string prompt = string.Join("\n", negative < 0 ? lines : lines.Take(negative));
        string neg = negative < 0 ? "" : string.Join("\n", lines.Skip(negative)).Substring("Negative prompt:".Length).Trim();
        return (prompt, neg, parameters);
    }

    public static string Number(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    private static bool LooksLikeParameters(string line) => line.StartsWith("Steps: ", StringComparison.Ordinal);

    private static string Quote(string value) =>
        value.Contains(',') || value.Contains(':') || value.Contains('"') ? "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"" : value;

    private static IEnumerable<(string, string)> SplitPairs(string line)
    {
        int i = 0;
        while (i < line.Length)
        {
            int colon = line.IndexOf(": ", i, StringComparison.Ordinal);
            if (colon < 0) yield break;
            string key = line[i..colon].Trim();
            int j = colon + 2;
            string value;
            if (j < line.Length && line[j] == '"')
            {
                var sb = new StringBuilder();
                j++;
                while (j < line.Length && line[j] != '"')
                {
                    if (line[j] == '\\' && j + 1 < line.Length) j++;
                    sb.Append(line[j++]);
                }
                value = sb.ToString();
                j = line.IndexOf(", ", j, StringComparison.Ordinal) is var n and >= 0 ? n + 2 : line.Length;
            }
            else
            {
                int comma = line.IndexOf(", ", j, StringComparison.Ordinal);
                value = comma < 0 ? line[j..] : line[j..comma];
                j = comma < 0 ? line.Length : comma + 2;
            }
            yield return (key, value);
            i = j;
        }
    }
}
