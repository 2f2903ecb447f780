using System.CommandLine;
using System.Text.Json;
using AsyncDiffusion.Tokenization;
using Spectre.Console;

namespace AsyncDiffusion.Cli.Commands;

/// <summary><c>asyncdiffusion tokenize [--model DIR] [--json] PROMPT</c>: shows how CLIP sees a prompt.</summary>
public static class TokenizeCommand
{
    public static Command Create(CliContext cli)
    {
        var prompt = new Argument<string>("prompt") { Description = "The prompt to tokenize." };
        var model = new Option<string?>("--model")
        {
            Description = "A diffusers model folder (its tokenizer/ is used) or a tokenizer folder with vocab.json and merges.txt. Default: CLIP's standard vocabulary.",
        };
        var json = new Option<bool>("--json") { Description = "Print {\"ids\", \"input_ids\", \"truncated\", \"dropped\"} as JSON." };
        var command = new Command("tokenize", "Tokenize a prompt as Stable Diffusion's CLIP text encoder sees it: tokens, ids, the 77 input ids and what was truncated.")
        {
            prompt, model, json,
        };
        command.SetAction(parse => cli.Guard(() =>
        {
            var tokenizer = Load(parse.GetValue(model));
            var result = tokenizer.Encode(parse.GetValue(prompt)!);
            if (parse.GetValue(json)) WriteJson(cli.Output, result);
            else WriteTable(cli.Console, tokenizer, result);
            return 0;
        }));
        return command;
    }

    private static ClipTokenizer Load(string? model)
    {
        if (model is null) return ClipTokenizer.Default;
        if (!Directory.Exists(model))
            throw new AsyncDiffusionException($"--model '{model}' is not a folder; expected a diffusers model folder or a tokenizer folder.");
        string nested = Path.Combine(model, "tokenizer");
        return ClipTokenizer.Load(File.Exists(Path.Combine(model, "vocab.json")) || !Directory.Exists(nested) ? model : nested);
    }

    private static void WriteJson(TextWriter output, TokenizedPrompt result)
    {
        var payload = new { ids = result.Ids, input_ids = result.InputIds, truncated = result.Truncated, dropped = result.Dropped };
        output.WriteLine(JsonSerializer.Serialize(payload, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    private static void WriteTable(IAnsiConsole console, ClipTokenizer tokenizer, TokenizedPrompt result)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn("#").AddColumn("token").AddColumn("text").AddColumn(new TableColumn("id").RightAligned());
        for (int i = 0; i < result.Ids.Length; i++)
        {
            bool kept = i == 0 || i == result.Ids.Length - 1 || i <= tokenizer.MaxLength - 2;
            string style = kept ? "" : "strike dim";
            string text = i == 0 || i == result.Ids.Length - 1 ? "" : tokenizer.Decode([result.Ids[i]]);
            table.AddRow(
                new Markup($"[{(kept ? "default" : style)}]{i}[/]"),
                new Markup($"[{(kept ? "default" : style)}]{Markup.Escape(result.Tokens[i])}[/]"),
                new Markup($"[{(kept ? "default" : style)}]{Markup.Escape(text)}[/]"),
                new Markup($"[{(kept ? "default" : style)}]{result.Ids[i]}[/]"));
        }
        console.Write(table);
        console.MarkupLine($"[bold]{result.ContentCount}[/] content tokens (the text encoder takes at most {tokenizer.MaxLength - 2}).");
        // The padding is one id repeated: show it as a count.
        int used = Math.Min(result.Ids.Length, tokenizer.MaxLength);
        int padding = result.InputIds.Length - used;
        console.MarkupLine($"input_ids ({result.InputIds.Length}): {string.Join(", ", result.InputIds.Take(used))}" +
            (padding > 0 ? $", then {padding} × {tokenizer.PadId} (padding)" : ""));
        console.MarkupLine(result.Truncated
            ? $"[yellow]Truncated:[/] the text encoder will not see: \"{Markup.Escape(result.Dropped)}\""
            : "Not truncated.");
    }
}
