using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// The graph rewrites applied to a model file as it is loaded: attention into ONNX Runtime's fused
/// MultiHeadAttention (<see cref="AttentionFusion"/>, unless <see cref="SessionSettings.FuseAttention"/>
/// is off) and GroupNormalization around InstanceNormalization (<see cref="GroupNormRewrite"/>,
/// always: same maths, faster kernel). The graph is read without its weights (large tensors
/// become references into the model's own files), so a rewrite costs kilobytes and ONNX Runtime
/// reads the weights from where they lie; with the optimised-graph cache it runs once per model
/// file, before the cache saves the graph.
/// </summary>
internal static class LoadTimeRewrites
{
    /// <summary>Names the rewrites in the optimised-graph cache's key: a change to them makes new entries.</summary>
    public static string Key(SessionSettings settings) => (settings.FuseAttention ? "attention-mha-1+" : "") + "groupnorm-instancenorm-1";

    /// <summary>A session for <paramref name="path"/>, of the rewritten graph when a rewrite applies; <paramref name="rewritten"/> says how many nodes each rewrite replaced.</summary>
    public static InferenceSession Open(string path, SessionOptions options, SessionSettings settings, out RewriteCounts rewritten)
    {
        var bytes = Rewrite(path, settings, out rewritten);
        if (bytes is null) return new InferenceSession(path, options);
        options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetDirectoryName(Path.GetFullPath(path))!);
        return new InferenceSession(bytes, options);
    }

    /// <summary>The rewritten model, or null when nothing applies (then ONNX Runtime reads the file itself).</summary>
    internal static byte[]? Rewrite(string path, SessionSettings settings, out RewriteCounts rewritten)
    {
        rewritten = default;
        global::Onnx.ModelProto? model;
        try
        {
            model = OnnxStructureReader.ReadReferencingWeights(path);
        }
        catch (ModelFolderException)
        {
            return null; // ONNX Runtime reports the unreadable file in its own words
        }
        if (model?.Graph is null) return null;
        var graph = OnnxGraph.FromModel(model, path);
        rewritten = Apply(graph, settings);
        return rewritten.Total > 0 ? graph.ToBytes() : null;
    }

    /// <summary>Applies the load-time rewrites to a graph read without its weights (also to variants, see <see cref="OnnxModel.LoadRewritten"/>).</summary>
    internal static RewriteCounts Apply(OnnxGraph graph, SessionSettings settings) =>
        new(settings.FuseAttention ? AttentionFusion.Apply(graph) : 0, GroupNormRewrite.Apply(graph));
}

/// <summary>How many nodes each load-time rewrite replaced: attentions fused, GroupNormalizations rewritten.</summary>
internal readonly record struct RewriteCounts(int Attentions, int GroupNorms)
{
    public int Total => Attentions + GroupNorms;
}
