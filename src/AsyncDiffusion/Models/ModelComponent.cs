using System.Text.Json;
using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>Shared plumbing of the component wrappers: binding inputs by name (by position as a fallback) and checking element types.</summary>
public abstract class ModelComponent : IDisposable
{
    protected ModelComponent(OnnxModel model) => Model = model;

    public OnnxModel Model { get; }
    public string Path => Model.Path;

    public virtual void Dispose() => Model.Dispose();

    protected string InputNamed(string name, int position, string expectation) => Bind(Model.InputNames, name, position, "input", expectation);

    protected string OutputNamed(string name, int position, string expectation) => Bind(Model.OutputNames, name, position, "output", expectation);

    private string Bind(IReadOnlyList<string> names, string name, int position, string kind, string expectation)
    {
        if (names.Contains(name)) return name;
        if (position < names.Count) return names[position];
        throw new ModelFolderException($"'{Path}' has no {kind} '{name}' (its {kind}s: {string.Join(", ", names)}); expected {expectation}.");
    }

    protected TensorElementType ElementType(string input, bool isInput, params TensorElementType[] accepted)
    {
        var meta = isInput ? Model.Inputs[input] : Model.Outputs[input];
        var type = meta.ElementDataType;
        if (!accepted.Contains(type))
            throw new ModelFolderException($"'{Path}': {(isInput ? "input" : "output")} '{input}' is {type}; expected {string.Join(" or ", accepted)}.");
        return type;
    }

    protected int[] Dimensions(string name, bool isInput) => (isInput ? Model.Inputs[name] : Model.Outputs[name]).Dimensions;

    /// <summary>A static dimension, or null where the graph leaves it symbolic.</summary>
    protected int? StaticDimension(string name, bool isInput, int axis)
    {
        var dims = Dimensions(name, isInput);
        int index = axis < 0 ? dims.Length + axis : axis;
        return index >= 0 && index < dims.Length && dims[index] > 0 ? dims[index] : null;
    }

    /// <summary>Reads an optional diffusers/transformers config.json beside the model.</summary>
    protected static JsonElement? ReadConfig(string folder)
    {
        string path = System.IO.Path.Combine(folder, "config.json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{path}' is not valid JSON ({e.Message}).");
        }
    }

    protected static int? ConfigInt(JsonElement? config, string key) =>
        config is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    protected static double? ConfigDouble(JsonElement? config, string key) =>
        config is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    protected static int[]? ConfigInts(JsonElement? config, string key) =>
        config is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : null;

    internal static T Guard<T>(OnnxModel model, Func<T> create)
    {
        try
        {
            return create();
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    protected static IReadOnlyList<float[]> RunFloat(OnnxModel model, string[] inputNames, OrtValue[] inputs, string[] outputs, CancellationToken ct, out long[][] shapes)
    {
        try
        {
            using var results = model.Run(inputNames, inputs, outputs, ct);
            shapes = results.Select(Tensors.Shape).ToArray();
            return results.Select(Tensors.ToFloats).ToArray();
        }
        finally
        {
            foreach (var v in inputs) v.Dispose();
        }
    }
}
