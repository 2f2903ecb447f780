namespace AsyncDiffusion.Tokenization;

/// <summary>The result of tokenizing one prompt.</summary>
/// <param name="Ids">Start token, every content id (not truncated), end token.</param>
/// <param name="InputIds">The text encoder's input: exactly <see cref="ClipTokenizer.MaxLength"/> ids, truncated and padded.</param>
/// <param name="Tokens">The BPE token strings of <paramref name="Ids"/> (byte-symbol form), for display and debugging.</param>
/// <param name="Truncated">Whether content ids were cut to fit the text encoder.</param>
/// <param name="Dropped">The text of the cut ids, decoded (empty when nothing was cut).</param>
public sealed record TokenizedPrompt(int[] Ids, int[] InputIds, string[] Tokens, bool Truncated, string Dropped)
{
    /// <summary>Content ids: <see cref="Ids"/> without the start and end tokens.</summary>
    public int ContentCount => Ids.Length - 2;
}
