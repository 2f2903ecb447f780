using System.Globalization;
using System.Text.RegularExpressions;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>A LoRA a prompt asks for by name, with its weight.</summary>
public sealed record LoraUse(string Name, double Weight);

/// <summary>
/// AUTOMATIC1111's prompt syntax for LoRAs: <c>&lt;lora:name&gt;</c> or <c>&lt;lora:name:weight&gt;</c>
/// anywhere in the prompt. The tags are taken out of the text the tokenizer sees.
/// </summary>
public static partial class LoraPrompt
{
    public static (string Prompt, IReadOnlyList<LoraUse> Loras) Extract(string prompt)
    {
        var uses = new List<LoraUse>();
        string cleaned = Tag().Replace(prompt, m =>
        {
            var fields = m.Groups[1].Value.Split(':');
            string name = fields[0].Trim();
            if (name.Length == 0) throw new AsyncDiffusionException($"'{m.Value}' names no LoRA; expected <lora:name> or <lora:name:weight>.");
            if (fields.Length > 2) throw new AsyncDiffusionException($"'{m.Value}' has {fields.Length - 1} weights; expected <lora:name:weight> with one weight.");
            double weight = 1.0;
            if (fields.Length == 2 && !double.TryParse(fields[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out weight))
                throw new AsyncDiffusionException($"'{m.Value}': weight '{fields[1]}' is not a number; expected e.g. <lora:{name}:0.8>.");
            uses.Add(new LoraUse(name, LoraReference.CheckWeight(weight, m.Value)));
            return "";
        });
        return (uses.Count == 0 ? prompt : cleaned.Trim(), uses);
    }

    [GeneratedRegex(@"<lora:([^>]*)>", RegexOptions.IgnoreCase)]
    private static partial Regex Tag();
}
