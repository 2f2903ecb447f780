using AsyncDiffusion.Onnx.Graphs;
using Onnx;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>
/// The input/output contract of one generation of real Stable Diffusion ONNX exports, so the
/// synthetic builder can write each variant the loader must accept.
/// </summary>
public sealed record ContractVintage(
    string Name,
    string Description,
    TensorProto.Types.DataType InputIdsType,
    TimestepForm Timestep,
    string ExternalDataName,
    bool EncoderSamplesInGraph,
    bool WriteComponentConfigs)
{
    /// <summary>diffusers' converter before Nov 2022: int64 timestep [batch], weights.pb, sampling VAE encoder.</summary>
    public static ContractVintage Legacy { get; } = new("legacy", "diffusers converter, before Nov 2022: int64 timestep [batch], weights.pb, latent_sample",
        TensorProto.Types.DataType.Int32, TimestepForm.Int64Batch, "weights.pb", true, false);

    /// <summary>optimum 1.6–1.23: float timestep [batch], model.onnx_data, latent_parameters, per-component config.json.</summary>
    public static ContractVintage Optimum { get; } = new("optimum", "optimum 1.6-1.23: float timestep [batch], model.onnx_data, latent_parameters",
        TensorProto.Types.DataType.Int32, TimestepForm.FloatBatch, "model.onnx_data", false, true);

    /// <summary>optimum ≥ 1.24: 0-d float timestep, int64 input_ids.</summary>
    public static ContractVintage Optimum124 { get; } = new("optimum-1.24", "optimum 1.24+: 0-d float timestep, int64 input_ids, latent_parameters",
        TensorProto.Types.DataType.Int64, TimestepForm.FloatScalar, "model.onnx_data", false, true);

    public static IReadOnlyList<ContractVintage> All { get; } = [Legacy, Optimum, Optimum124];

    public static ContractVintage Parse(string name) =>
        All.FirstOrDefault(v => string.Equals(v.Name, name, StringComparison.OrdinalIgnoreCase) || string.Equals(v.Name.Replace("-", ""), name.Replace("-", ""), StringComparison.OrdinalIgnoreCase))
        ?? throw new AsyncDiffusionException($"Unknown contract vintage '{name}'; expected one of: {string.Join(", ", All.Select(v => $"{v.Name} ({v.Description})"))}.");

    internal string TimestepInput(OnnxGraphBuilder g) => Timestep switch
    {
        TimestepForm.Int64Batch => g.Input("timestep", TensorProto.Types.DataType.Int64, "batch"),
        TimestepForm.FloatBatch => g.Input("timestep", g.FloatType, "batch"),
        _ => g.Input("timestep", g.FloatType),
    };
}

public enum TimestepForm { Int64Batch, FloatBatch, FloatScalar }
