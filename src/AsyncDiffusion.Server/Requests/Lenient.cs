using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Requests;

/// <summary>
/// Reads client JSON the way A1111 does: every field optional, unknown fields ignored, and types
/// coerced where the intent is clear ("20" or 20.0 for 20, 1/0 for booleans, null for absent).
/// A value that cannot mean what the field needs is a <see cref="BadRequestException"/>.
/// </summary>
public static class Lenient
{
    /// <summary>How deep a request body may nest; A1111 and OpenAI bodies need 3 or 4 levels.</summary>
    public const int MaxDepth = 32;

    /// <summary>
    /// Reads the body once, up front, as a JSON object and checks all of it before any work:
    /// nesting within <see cref="MaxDepth"/>, no key twice in one object, and every string and
    /// key valid Unicode (no invalid UTF-8, no lone surrogate escapes), so nothing read from it
    /// later can fail. The document reads the body in place and lives until the response is
    /// written; elements must not be kept beyond the request.
    /// </summary>
    public static async Task<JsonElement> ReadObjectAsync(HttpRequest request)
    {
        var body = await ReadBodyAsync(request);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e) when (e.Message.Contains("depth", StringComparison.OrdinalIgnoreCase))
        {
            throw new BadRequestException("body", $"the request body nests deeper than {MaxDepth} levels");
        }
        catch (JsonException e)
        {
            throw new BadRequestException("body", $"the request body is not valid JSON ({e.Message})");
        }
        request.HttpContext.Response.RegisterForDispose(doc);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new BadRequestException("body", $"the request body is a JSON {doc.RootElement.ValueKind}; expected an object");
        Check(doc.RootElement, "");
        return doc.RootElement;
    }

    // The body in one array of its own size, which the document then reads in place: no pooled buffers grown by doubling, no copy.
    private static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpRequest request)
    {
        var aborted = request.HttpContext.RequestAborted;
        try
        {
            if (request.ContentLength is long length)
            {
                long? limit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
                if (length > (limit ?? int.MaxValue) || length > int.MaxValue)
                    throw new BadHttpRequestException("Request body too large.", StatusCodes.Status413PayloadTooLarge);
                var body = new byte[length];
                await request.Body.ReadExactlyAsync(body, aborted);
                return body;
            }
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, aborted); // chunked: Kestrel stops it at the body limit
            return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        }
        catch (IOException e) when (e is not BadHttpRequestException && !aborted.IsCancellationRequested)
        {
            throw new BadRequestException("body", $"the request body could not be read to its end ({e.Message})");
        }
    }

    private static void Check(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var property in element.EnumerateObject())
                {
                    string name = ValidText(() => property.Name, path.Length == 0 ? "a key" : $"a key in {path}");
                    string inner = path.Length == 0 ? name : $"{path}.{name}";
                    if (!seen.Add(name)) throw new BadRequestException(inner, $"{inner} appears twice; each field may be given once");
                    Check(property.Value, inner);
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray()) Check(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.String:
                // Strings without escapes are checked as raw UTF-8, so a 20 MB base64 upload is not copied to be checked.
                var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(element);
                if (raw.IndexOf((byte)'\\') < 0)
                {
                    if (!System.Text.Unicode.Utf8.IsValid(raw)) throw Invalid(path);
                }
                else ValidText(element.GetString, path);
                break;
        }
    }

    private static string ValidText(Func<string?> read, string what)
    {
        string text;
        try
        {
            text = read() ?? "";
        }
        catch (InvalidOperationException)
        {
            throw Invalid(what);
        }
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) throw Invalid(what);
        }
        return text;
    }

    private static BadRequestException Invalid(string what) =>
        new(what, $"{what} is not valid Unicode text (invalid UTF-8 or a lone surrogate such as \\ud800); expected a string of Unicode characters");

    public static JsonElement? Field(this JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined) ? v : null;

    public static string? String(this JsonElement o, string name) => o.Field(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { ValueKind: JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False } v => v.GetRawText(),
        _ => throw new BadRequestException(name, $"{name} must be a string"),
    };

    public static double? Number(this JsonElement o, string name) => o.Field(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetDouble(out double d) && double.IsFinite(d) => d,
        { ValueKind: JsonValueKind.True } => 1,
        { ValueKind: JsonValueKind.False } => 0,
        { ValueKind: JsonValueKind.String } v when double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) => d,
        { ValueKind: JsonValueKind.String } v when string.IsNullOrWhiteSpace(v.GetString()) => null,
        var v => throw new BadRequestException(name, $"{name} is {v!.Value.GetRawText()}; expected a number"),
    };

    public static long? Integer(this JsonElement o, string name)
    {
        double? d = o.Number(name);
        if (d is null) return null;
        if (!double.IsFinite(d.Value) || Math.Abs(d.Value) > 1e15) throw new BadRequestException(name, $"{name} is {d}; expected an integer");
        return (long)Math.Round(d.Value);
    }

    /// <summary><see cref="Integer"/> clamped into int's range: validation later names the field and its allowed range.</summary>
    public static int? Int32(this JsonElement o, string name) => o.Integer(name) is long v ? (int)Math.Clamp(v, int.MinValue, int.MaxValue) : null;

    public static bool? Bool(this JsonElement o, string name) => o.Field(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { ValueKind: JsonValueKind.Number } v => !v.TryGetDouble(out double d) || d != 0, // beyond double's range is not zero
        { ValueKind: JsonValueKind.String } v => v.GetString()!.Trim().ToLowerInvariant() is "true" or "1" or "yes",
        var v => throw new BadRequestException(name, $"{name} is {v!.Value.GetRawText()}; expected true or false"),
    };

    public static int ClampInt(long? value, string name, int min, int max, int fallback)
    {
        long v = value ?? fallback;
        if (v < min || v > max) throw new BadRequestException(name, $"{name} is {v}; expected {min} to {max}");
        return (int)v;
    }
}

/// <summary>Bad client input: answered 400 (or 422) in the shape of the API that was called.</summary>
public sealed class BadRequestException(string field, string message, int status = 400, string? code = null) : Exception(message)
{
    public string Field { get; } = field;
    public int Status { get; } = status;

    /// <summary>A machine-readable reason where the API has one (OpenAI's <c>error.code</c>, e.g. <c>unknown_parameter</c>).</summary>
    public string? Code { get; } = code;
}
