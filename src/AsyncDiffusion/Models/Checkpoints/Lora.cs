using System.Globalization;
using System.Numerics;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>A LoRA file and how strongly to apply it (1 = as trained, 0 = not at all).</summary>
public sealed record LoraReference(string Path, double Weight = 1.0)
{
    public string Name => System.IO.Path.GetFileNameWithoutExtension(Path);

    /// <summary>Parses <c>FILE[:WEIGHT]</c> (a trailing <c>:number</c> is the weight, so Windows drive letters stay in the path).</summary>
    public static LoraReference Parse(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon > 0 && double.TryParse(text[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double weight))
            return new LoraReference(text[..colon], CheckWeight(weight, text));
        return new LoraReference(text);
    }

    public static double CheckWeight(double weight, string what) =>
        double.IsFinite(weight) && Math.Abs(weight) <= 100 ? weight : throw new AsyncDiffusionException($"LoRA weight in '{what}' must be a number between -100 and 100.");
}

/// <summary>
/// LoRAs resolved against one model's parameters and merged into them as they are bound:
/// W' = W + m·(α/r)·up·down per targeted weight (r = down's rank, α the file's alpha or r when
/// absent, m the user's weight). Reads kohya/A1111 files (<c>lora_unet_…</c>, <c>lora_te_…</c>
/// with <c>lora_down</c>/<c>lora_up</c>/<c>alpha</c>, diffusers- or LDM-style module names,
/// LoCon convolutions) and diffusers/PEFT files (<c>unet.….lora_A/lora_B</c>,
/// <c>.lora.down/.lora.up</c>). Keys it cannot place are reported, never dropped silently; a LoRA
/// that places nothing, or whose shapes do not fit, is an error. Owns the mapped files.
/// </summary>
internal sealed class LoraMerge : IDisposable
{
    private readonly List<SafeTensors> _files = new();
    private readonly Dictionary<string, List<LoraModule>> _targets = new(StringComparer.Ordinal);

    public List<string> Notes { get; } = new();
    public List<string> Warnings { get; } = new();

    private sealed record LoraModule(string Lora, string Module, SafeTensors File, SafeTensorInfo Down, SafeTensorInfo Up, double Coefficient);

    public bool IsEmpty => _targets.Count == 0;

    public static LoraMerge Load(IReadOnlyList<LoraReference> loras, IReadOnlyDictionary<string, IReadOnlyList<ParameterSpec>> parameters, UNetConfig unet)
    {
        var merge = new LoraMerge();
        try
        {
            if (loras.Count == 0) return merge;
            var table = ModuleTable(parameters, unet);
            foreach (var lora in loras) merge.Add(lora, table);
            return merge;
        }
        catch
        {
            merge.Dispose();
            throw;
        }
    }

    /// <summary>Adds every targeted delta to <paramref name="values"/> (state-dict layout).</summary>
    public void Apply(ParameterSpec parameter, float[] values)
    {
        if (!_targets.TryGetValue(Key(parameter.Component, parameter.Name), out var modules)) return;
        foreach (var m in modules) AddDelta(parameter, values, m);
    }

    private void Add(LoraReference lora, Dictionary<string, (string Component, ParameterSpec Target)> table)
    {
        if (!File.Exists(lora.Path)) throw new AsyncDiffusionException($"LoRA '{lora.Path}' not found; expected a .safetensors LoRA file.");
        var file = SafeTensors.Open(lora.Path);
        _files.Add(file);
        var unknown = new List<string>();
        var groups = new Dictionary<string, Dictionary<string, SafeTensorInfo>>(StringComparer.Ordinal);
        foreach (var info in file.Tensors.Values)
        {
            if (Split(info.Name) is not var (module, part)) { unknown.Add(info.Name); continue; }
            if (!groups.TryGetValue(module, out var parts)) groups[module] = parts = new(StringComparer.Ordinal);
            parts[part] = info;
        }
        int unet = 0, text = 0;
        foreach (var (module, parts) in groups.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            if (!table.TryGetValue(module, out var target) || !parts.TryGetValue("down", out var down) || !parts.TryGetValue("up", out var up)
                || parts.Keys.Any(k => k is not ("down" or "up" or "alpha")))
            {
                unknown.AddRange(parts.Values.Select(p => p.Name));
                continue;
            }
            if (lora.Weight == 0) continue;
            var spec = target.Target;
            CheckShapes(lora, module, spec, down, up);
            long rank = down.Shape[0];
            double alpha = parts.TryGetValue("alpha", out var a) ? file.ReadFloats(a)[0] : rank;
            var entry = new LoraModule(lora.Name, module, file, down, up, lora.Weight * alpha / rank);
            string key = Key(target.Component, spec.Name);
            if (!_targets.TryGetValue(key, out var list)) _targets[key] = list = new();
            list.Add(entry);
            if (target.Component == "unet") unet++; else text++;
        }
        if (unet + text == 0 && lora.Weight != 0)
            throw new ModelFolderException($"LoRA '{lora.Path}' places none of its {file.Tensors.Count} tensors on this model ({OpenedCheckpoint.FirstNames(file.Names)}); is it for another model family (SDXL?) or a LyCORIS type other than LoRA/LoCon?");
        Notes.Add(lora.Weight == 0
            ? $"LoRA '{lora.Name}': weight 0, not applied"
            : $"LoRA '{lora.Name}' × {lora.Weight.ToString(CultureInfo.InvariantCulture)}: {unet} UNet and {text} text encoder layers");
        if (unknown.Count > 0)
            Warnings.Add($"LoRA '{lora.Name}': {unknown.Count} tensors not applied (no matching layer, or a LyCORIS form other than LoRA/LoCon): " +
                string.Join(", ", unknown.Order(StringComparer.Ordinal).Take(5)) + (unknown.Count > 5 ? ", …" : ""));
    }

    private static void CheckShapes(LoraReference lora, string module, ParameterSpec spec, SafeTensorInfo down, SafeTensorInfo up)
    {
        long outputs = spec.Shape[0], inputs = spec.ElementCount / outputs, rank = down.Shape.Length > 0 ? down.Shape[0] : 0;
        // A k×k convolution needs a k×k down (LoCon); linear and 1×1 layers take [r, in] or [r, in, 1, 1].
        bool kernel = spec.Shape.Length < 4 || spec.Shape[2] * spec.Shape[3] == 1 || (down.Shape.Length == 4 && down.Shape[2..].SequenceEqual(spec.Shape[2..]));
        bool fits = rank > 0 && up.Shape.Length >= 2 && up.Shape[0] == outputs && up.ElementCount == outputs * rank && down.ElementCount == rank * inputs && kernel;
        if (!fits)
            throw new ModelFolderException($"LoRA '{lora.Path}': '{module}' has down {down.ShapeText} and up {up.ShapeText}, which do not fit {spec.Component} weight '{spec.Name}' {spec.ShapeText}; is the LoRA for another model family?");
    }

    // W[o, j] += c · Σ_r up[o, r] · down[r, j], j over the input channels × kernel.
    private static void AddDelta(ParameterSpec spec, float[] values, LoraModule m)
    {
        var down = m.File.ReadFloats(m.Down);
        var up = m.File.ReadFloats(m.Up);
        int rank = (int)m.Down.Shape[0];
        int outputs = (int)spec.Shape[0];
        int inputs = (int)(spec.ElementCount / outputs);
        var row = new float[inputs];
        for (int o = 0; o < outputs; o++)
        {
            Array.Clear(row);
            for (int r = 0; r < rank; r++)
            {
                float u = up[o * rank + r];
                if (u == 0) continue;
                Axpy(u, down.AsSpan(r * inputs, inputs), row);
            }
            Axpy((float)m.Coefficient, row, values.AsSpan(o * inputs, inputs));
        }
    }

    private static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<float>(a);
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
                (new Vector<float>(y[i..]) + va * new Vector<float>(x[i..])).CopyTo(y[i..]);
        }
        for (; i < x.Length; i++) y[i] += a * x[i];
    }

    private static readonly (string Suffix, string Part)[] Suffixes =
    [
        (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".alpha", "alpha"),
        (".lora_A.weight", "down"), (".lora_B.weight", "up"),
        (".lora.down.weight", "down"), (".lora.up.weight", "up"),
        (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
        (".lora_mid.weight", "mid"), (".dora_scale", "dora"), (".scale", "scale"),
    ];

    private static (string Module, string Part)? Split(string key)
    {
        foreach (var (suffix, part) in Suffixes)
            if (key.EndsWith(suffix, StringComparison.Ordinal)) return (key[..^suffix.Length], part);
        return null;
    }

    /// <summary>Every name a LoRA may give a targetable weight (Linear or Conv of the UNet and text encoder).</summary>
    private static Dictionary<string, (string, ParameterSpec)> ModuleTable(IReadOnlyDictionary<string, IReadOnlyList<ParameterSpec>> parameters, UNetConfig unet)
    {
        var table = new Dictionary<string, (string, ParameterSpec)>(StringComparer.Ordinal);
        foreach (var (component, kohya, peft) in new[] { ("unet", "lora_unet_", "unet."), ("text_encoder", "lora_te_", "text_encoder.") })
        {
            if (!parameters.TryGetValue(component, out var specs)) continue;
            foreach (var spec in specs)
            {
                if (!spec.Name.EndsWith(".weight", StringComparison.Ordinal) || spec.Shape.Length is not (2 or 4) || spec.Name.Contains("embedding", StringComparison.Ordinal)) continue;
                string module = spec.Name[..^".weight".Length];
                table[kohya + module.Replace('.', '_')] = (component, spec);
                table[peft + module] = (component, spec);
                if (component == "unet" && LdmNames.UNet(spec.Name, unet) is { } ldm)
                    table[kohya + ldm[..^".weight".Length].Replace('.', '_')] = (component, spec);
            }
        }
        return table;
    }

    private static string Key(string component, string name) => component + "/" + name;

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
