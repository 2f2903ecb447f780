using AsyncDiffusion.Onnx.Graphs;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime;

namespace AsyncDiffusion.Onnx;

/// <summary>
/// The graph rewrites applied to a model file as it is loaded — today attention into ONNX
/// Runtime's fused MultiHeadAttention (<see cref="AttentionFusion"/>). The graph is read without
/// its weights (large tensors become references into the model's own files), so a rewrite costs
/// kilobytes and ONNX Runtime reads the weights from where they lie; with the optimised-graph
/// cache it runs once per model file, before the cache saves the graph.
/// </summary>
internal static class LoadTimeRewrites
{
    /// <summary>Names the rewrites in the optimised-graph cache's key: a change to them makes new entries.</summary>
    public static string Key(SessionSettings settings) => settings.FuseAttention ? "attention-mha-1" : "none";

    /// <summary>A session for <paramref name="path"/>, of the rewritten graph when a rewrite applies; <paramref name="fused"/> says how many attentions were fused.</summary>
    public static InferenceSession Open(string path, SessionOptions options, SessionSettings settings, out int fused)
    {
        var rewritten = Rewrite(path, settings, out fused);
        if (rewritten is null) return new InferenceSession(path, options);
        options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetDirectoryName(Path.GetFullPath(path))!);
        return new InferenceSession(rewritten, options);
    }

    /// <summary>The rewritten model, or null when nothing applies (then ONNX Runtime reads the file itself).</summary>
    internal static byte[]? Rewrite(string path, SessionSettings settings, out int fused)
    {
        fused = 0;
        if (!settings.FuseAttention) return null;
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
        fused = Apply(graph, settings);
        return fused > 0 ? graph.ToBytes() : null;
    }

    /// <summary>Applies the load-time rewrites to a graph read without its weights (also to variants, see <see cref="OnnxModel.LoadRewritten"/>); returns the attentions fused.</summary>
    internal static int Apply(OnnxGraph graph, SessionSettings settings) => settings.FuseAttention ? AttentionFusion.Apply(graph) : 0;
}
