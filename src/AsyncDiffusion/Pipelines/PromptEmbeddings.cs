using AsyncDiffusion.Models;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The text encoder's output for one request: the conditional states and, with guidance, the
/// unconditional (negative prompt) states, each [1, tokens, hidden].
/// </summary>
public sealed record PromptEmbeddings(float[] Conditional, float[]? Unconditional, int Tokens, int Hidden, TokenizedPrompt Prompt, TokenizedPrompt? Negative)
{
    /// <summary>Tokenizes and encodes both prompts in one text-encoder call (batch 2 with guidance).</summary>
    public static PromptEmbeddings Encode(ModelFolder model, string prompt, string negative, bool guidance, StageTimings timings, CancellationToken cancellation)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var cond = model.Tokenizer.Encode(prompt);
        var uncond = guidance ? model.Tokenizer.Encode(negative) : null;
        timings.TokenizeMs += clock.Elapsed.TotalMilliseconds;

        clock.Restart();
        int tokens = cond.InputIds.Length;
        int[] ids = uncond is null ? cond.InputIds : [.. uncond.InputIds, .. cond.InputIds];
        var states = model.TextEncoder.Encode(ids, uncond is null ? 1 : 2, cancellation);
        timings.TextEncodeMs += clock.Elapsed.TotalMilliseconds;
        int hidden = model.TextEncoder.HiddenSize;
        int size = tokens * hidden;
        return uncond is null
            ? new PromptEmbeddings(states, null, tokens, hidden, cond, null)
            : new PromptEmbeddings(states[size..], states[..size], tokens, hidden, cond, uncond);
    }
}
