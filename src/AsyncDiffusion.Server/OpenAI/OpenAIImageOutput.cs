using AsyncDiffusion.Engine;
using AsyncDiffusion.Imaging;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Server.OpenAI;

/// <summary>
/// How an OpenAI images request wants its images back: <c>response_format</c> (url or b64_json,
/// defaulting by the model family named in <c>model</c>, as OpenAI does), <c>output_format</c>
/// and <c>output_compression</c>. The same choice applies to streamed partial and final images.
/// </summary>
internal sealed record OpenAIImageOutput(string ResponseFormat, ImageFormat Format, int Compression)
{
    /// <summary>OpenAI's default and the most a client can ask for: the best quality the codec has.</summary>
    public const int DefaultCompression = 100;

    public string FormatName => Format switch { ImageFormat.Jpeg => "jpeg", ImageFormat.Webp => "webp", _ => "png" };

    public static OpenAIImageOutput Read(Func<string, string?> text, Func<string, long?> integer)
    {
        string? model = text("model");
        string? asked = text("response_format");
        if (asked is not null && IsGptImageModel(model))
            throw new BadRequestException("response_format",
                $"Unknown parameter: 'response_format'. GPT image models ('{model}') always return b64_json; leave response_format out, or name a dall-e-* model to get a url.",
                code: "unknown_parameter");
        string responseFormat = asked ?? (IsGptImageModel(model) ? "b64_json" : "url");
        if (responseFormat is not ("url" or "b64_json")) throw new BadRequestException("response_format", $"response_format '{responseFormat}' is not url or b64_json");

        string formatName = text("output_format") ?? "png";
        var format = formatName.Trim().ToLowerInvariant() switch
        {
            "png" => ImageFormat.Png,
            "jpeg" or "jpg" => ImageFormat.Jpeg,
            "webp" => ImageFormat.Webp,
            _ => throw new BadRequestException("output_format", $"output_format '{formatName}' is not png, jpeg or webp"),
        };
        int compression = Lenient.ClampInt(integer("output_compression"), "output_compression", 0, 100, DefaultCompression);
        return new OpenAIImageOutput(responseFormat, format, compression);
    }

    /// <summary>
    /// OpenAI's GPT image models (gpt-image-1, gpt-image-1.5, gpt-image-1-mini, chatgpt-image-latest, …)
    /// answer only in b64_json. dall-e-* names, our own model names and no name at all keep url as the default.
    /// </summary>
    public static bool IsGptImageModel(string? model) =>
        model is not null && (model.StartsWith("gpt-image", StringComparison.OrdinalIgnoreCase) || model.StartsWith("chatgpt-image", StringComparison.OrdinalIgnoreCase));

    /// <summary>The image in the requested format; JPEG and WebP at quality <see cref="Compression"/> (PNG is lossless and ignores it).</summary>
    public byte[] Encode(RgbImage image, string? infotext = null) => ImageCodec.Encode(image, Format, infotext, Compression);

    /// <summary>Finished image <paramref name="index"/> of a job: the engine's own PNG (with its infotext) when PNG was asked for.</summary>
    public byte[] Finished(JobResult result, int index)
    {
        var image = result.Generation.Images[index];
        return Format == ImageFormat.Png ? result.Files[index] : Encode(image.Image, image.Infotext);
    }

    /// <summary>A TAESD preview (the engine makes PNGs) in the requested format.</summary>
    public byte[] Preview(byte[] png) => Format == ImageFormat.Png ? png : Encode(ImageCodec.Decode(png, "preview"));
}
