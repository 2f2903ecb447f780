using System.Text.Json.Nodes;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>What <see cref="SyntheticModelWriter"/> wrote.</summary>
public sealed record SyntheticModelSummary(string Folder, SyntheticPreset Preset, ContractVintage Vintage, bool Half, ulong Seed,
    IReadOnlyDictionary<string, long> Parameters, long Bytes, TimeSpan Elapsed);

/// <summary>
/// Writes a complete diffusers-ONNX model folder for a preset with seeded random weights (through
/// <see cref="ModelWriter"/>). Same inputs, byte-identical files.
/// </summary>
public static class SyntheticModelWriter
{
    public const string MarkerKey = ModelFolder.SyntheticMarkerKey;

    public static SyntheticModelSummary Write(string folder, SyntheticPreset preset, ContractVintage? vintage = null, bool half = false, ulong seed = 0)
    {
        vintage ??= ContractVintage.Optimum124;
        var written = ModelWriter.Write(folder, preset, new SeededWeights(seed), new ModelWriteOptions
        {
            Vintage = vintage,
            Half = half,
            IndexEntries = new Dictionary<string, JsonNode?>
            {
                [MarkerKey] = new JsonObject
                {
                    ["preset"] = preset.Name,
                    ["vintage"] = vintage.Name,
                    ["precision"] = half ? "fp16" : "fp32",
                    ["seed"] = seed,
                    ["note"] = "Synthetic model written by AsyncDiffusion: real architecture, random weights. It makes abstract images.",
                },
            },
        });
        return new SyntheticModelSummary(written.Folder, preset, vintage, half, seed, written.Parameters, written.Bytes, written.Elapsed);
    }

    /// <summary>The UNet graph of a preset without weight data: enough for FLOP counting and parameter counts.</summary>
    public static global::Onnx.GraphProto UNetShapes(SyntheticPreset preset, ContractVintage? vintage = null)
    {
        using var g = new OnnxGraphBuilder("unet", new SeededWeights(0), half: false, shapesOnly: true);
        UNetGraph.Build(g, preset.UNet, vintage ?? ContractVintage.Optimum124);
        return g.Build("asyncdiffusion-synthetic").Graph;
    }
}
