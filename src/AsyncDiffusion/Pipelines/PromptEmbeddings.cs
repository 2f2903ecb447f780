using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The text encoder's output for one request: the conditional states and, with guidance, the
/// unconditional (negative prompt) states, each [1, tokens, hidden].
/// </summary>
public sealed record PromptEmbeddings(float[] Conditional, float[]? Unconditional, int Tokens, int Hidden, TokenizedPrompt Prompt, TokenizedPrompt? Negative);
