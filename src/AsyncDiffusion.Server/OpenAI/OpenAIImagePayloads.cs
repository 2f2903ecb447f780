namespace AsyncDiffusion.Server.OpenAI;

/// <summary>
/// The metadata OpenAI sends with images, and the stream events that carry them, with every field
/// the official SDKs declare (openai-python's ImageGenPartialImageEvent, ImageGenCompletedEvent,
/// ImageEditPartialImageEvent, ImageEditCompletedEvent; ImagesResponse for the plain answer).
/// </summary>
internal sealed class OpenAIImagePayloads(string eventPrefix, OpenAIImageOutput output, int width, int height, int promptTokens)
{
    // Images are always opaque, and the steps are ours to choose: OpenAI's quality "auto".
    public const string Background = "opaque";
    private const string Quality = "auto";

    public string PartialImageEvent => $"{eventPrefix}.partial_image";
    public string CompletedEvent => $"{eventPrefix}.completed";
    public string Size => $"{width}x{height}";

    /// <summary>
    /// Token usage as OpenAI reports it for GPT image models. The prompt's CLIP tokens are the text
    /// tokens; a diffusion model reads and writes latents, not image tokens, so those counts are 0.
    /// </summary>
    public object Usage => new
    {
        input_tokens = promptTokens,
        input_tokens_details = new { image_tokens = 0, text_tokens = promptTokens },
        output_tokens = 0,
        total_tokens = promptTokens,
    };

    public object PartialImage(byte[] image, int index) => new
    {
        type = PartialImageEvent,
        b64_json = Convert.ToBase64String(image),
        created_at = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        size = Size,
        quality = Quality,
        background = Background,
        output_format = output.FormatName,
        partial_image_index = index,
    };

    public object Completed(byte[] image) => new
    {
        type = CompletedEvent,
        b64_json = Convert.ToBase64String(image),
        created_at = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        size = Size,
        quality = Quality,
        background = Background,
        output_format = output.FormatName,
        usage = Usage,
    };
}
