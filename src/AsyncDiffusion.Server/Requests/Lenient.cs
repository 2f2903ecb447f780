using System.Globalization;
using System.Text.Json;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Requests;

/// <summary>
/// Reads client JSON the way A1111 does: every field optional, unknown fields ignored, and types
/// coerced where the intent is clear ("20" or 20.0 for 20, 1/0 for booleans, null for absent).
/// A value that cannot mean what the field needs is a <see cref="BadRequestException"/>.
/// </summary>
public static class Lenient
{
    public static async Task<JsonElement> ReadObjectAsync(HttpRequest request)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(request.Body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new BadRequestException("body", $"the request body is a JSON {doc.RootElement.ValueKind}; expected an object");
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new BadRequestException("body", $"the request body is not valid JSON ({e.Message})");
        }
    }

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
        { ValueKind: JsonValueKind.Number } v => v.GetDouble(),
        { ValueKind: JsonValueKind.True } => 1,
        { ValueKind: JsonValueKind.False } => 0,
        { ValueKind: JsonValueKind.String } v when double.TryParse(v.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
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

    public static bool? Bool(this JsonElement o, string name) => o.Field(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { ValueKind: JsonValueKind.Number } v => v.GetDouble() != 0,
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
