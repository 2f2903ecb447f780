using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx.Graphs;

namespace AsyncDiffusion.Tests.Doubles;

/// <summary>
/// A UNet stand-in with a known output, for testing the pipeline's arithmetic against a hand
/// replay: out = A·sample + B·(t / 1000) + C·mean(encoder_hidden_states of that batch row).
/// It keeps the real UNet's input/output contract (names, dtypes, timestep form). As an
/// inpainting UNet (<see cref="Inpainting"/> set) its sample has 2C + 1 channels (latents, mask,
/// masked-image latents) and out = A·latents + … + D·mask + E·masked-image latents, so the
/// trajectory depends on exactly what the pipeline feeds in those channels.
/// </summary>
public sealed record AnalyticUNet(float A, float B, float C)
{
    /// <summary>Weights (D, E) of the mask and masked-image channels; null for a text-to-image UNet.</summary>
    public (float D, float E)? Inpainting { get; init; }

    /// <summary>Fault injection for failure-isolation tests: the output is NaN wherever the timestep exceeds this.</summary>
    public float? NanAboveTimestep { get; init; }

    public static AnalyticUNet Default { get; } = new(0.05f, 0.2f, 3.0f);

    /// <summary>Replaces <c>unet/model.onnx</c> of a synthetic folder with this function (same contract vintage).</summary>
    public void WriteInto(string modelFolder, int latentChannels, int hidden, ContractVintage vintage)
    {
        string dir = Path.Combine(modelFolder, "unet");
        foreach (var f in Directory.GetFiles(dir)) if (Path.GetFileName(f) != "config.json") File.Delete(f);
        using var g = new OnnxGraphBuilder("analytic_unet", new SeededWeights(0), half: false);
        int inputChannels = Inpainting is null ? latentChannels : 2 * latentChannels + 1;
        var input = g.Input("sample", g.FloatType, "batch", inputChannels, "height", "width");
        var sample = Inpainting is null ? input : Channels(g, input, 0, latentChannels);
        var timestep = vintage.TimestepInput(g);
        var context = g.Input("encoder_hidden_states", g.FloatType, "batch", "sequence", hidden);
        var t = g.Op("Reshape", [g.Op("Cast", [timestep], ("to", (int)global::Onnx.TensorProto.Types.DataType.Float)), g.Int64(-1, 1, 1, 1)]);
        var mean = g.Op("ReduceMean", [context, g.Int64(1, 2)], ("keepdims", 1));            // [B, 1, 1]
        mean = g.Op("Unsqueeze", [mean, g.Int64(3)]);                                          // [B, 1, 1, 1]
        var y = g.Op("Add", [g.Op("Mul", [sample, g.Float(A)]), g.Op("Mul", [t, g.Float(B / 1000f)])]);
        y = g.Op("Add", [y, g.Op("Mul", [mean, g.Float(C)])]);
        if (Inpainting is (float d, float e))
        {
            y = g.Op("Add", [y, g.Op("Mul", [Channels(g, input, latentChannels, latentChannels + 1), g.Float(d)])]);
            y = g.Op("Add", [y, g.Op("Mul", [Channels(g, input, latentChannels + 1, 2 * latentChannels + 1), g.Float(e)])]);
        }
        if (NanAboveTimestep is float limit)
            y = g.Op("Add", [y, g.Op("Mul", [g.Op("Sqrt", [g.Op("Sub", [g.Float(limit), t])]), g.Float(0f)])]); // 0·sqrt(limit − t): NaN above the limit
        g.Output("out_sample", y, g.FloatType, "batch", latentChannels, "height", "width");
        g.Save(Path.Combine(dir, "model.onnx"), "asyncdiffusion-analytic");
    }

    private static string Channels(global::AsyncDiffusion.Onnx.Graphs.OnnxGraphBuilder g, string x, int from, int to) =>
        g.Op("Slice", [x, g.Int64(from), g.Int64(to), g.Int64(1)]);

    /// <summary>The same function on the host, for the replay: one row (output: the latent channels).</summary>
    public void Evaluate(ReadOnlySpan<float> sample, double timestep, ReadOnlySpan<float> contextRow, Span<float> output)
    {
        double sum = 0;
        foreach (var v in contextRow) sum += v;
        float mean = (float)(sum / contextRow.Length);
        float tt = (float)timestep;
        int n = output.Length;
        for (int i = 0; i < n; i++) output[i] = sample[i] * A + tt * (B / 1000f) + mean * C;
        if (Inpainting is (float d, float e))
        {
            // sample = latents (n) | mask (n / C) | masked-image latents (n); the mask plane is broadcast over the channels.
            int maskPlane = sample.Length - 2 * n;
            for (int i = 0; i < n; i++) output[i] += d * sample[n + i % maskPlane] + e * sample[n + maskPlane + i];
        }
    }
}
