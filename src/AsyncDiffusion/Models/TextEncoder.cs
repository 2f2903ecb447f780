using System.Text.Json;
using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Rewriting;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>
/// The CLIP text encoder: token ids [batch, 77] → hidden states [batch, 77, hidden] (int32 or int64 ids, fp32 or fp16 states).
/// With clip skip N &gt; 1 the states come from a second session of the same file whose graph
/// also outputs each earlier layer's states through the final layer norm (see
/// <see cref="ClipSkipOutputs"/>), built on the first such request.
/// </summary>
public sealed class TextEncoder : ModelComponent
{
    private readonly string _input, _output;
    private readonly LazyVariant<ClipSkipSession> _clipSkip;

    public TensorElementType InputIdsType { get; }
    public TensorElementType OutputType { get; }
    public int HiddenSize { get; }
    public bool HasPooler { get; }

    /// <summary>
    /// An OpenCLIP text encoder (SD 2.x: GELU, 1024 wide). AUTOMATIC1111 ignores clip skip for
    /// these (its OpenCLIP path always takes the penultimate layer, which diffusers exports as
    /// the last), and so does AsyncDiffusion.
    /// </summary>
    public bool IgnoresClipSkip { get; }

    private TextEncoder(OnnxModel model, string folder, SessionSettings settings) : base(model)
    {
        _input = InputNamed("input_ids", 0, "input_ids, int32 or int64 [batch, sequence]");
        _output = OutputNamed("last_hidden_state", 0, "last_hidden_state, float [batch, sequence, hidden]");
        InputIdsType = ElementType(_input, true, TensorElementType.Int32, TensorElementType.Int64);
        OutputType = ElementType(_output, false, TensorElementType.Float, TensorElementType.Float16);
        HasPooler = model.OutputNames.Contains("pooler_output");
        var config = ReadConfig(folder);
        HiddenSize = StaticDimension(_output, false, -1) ?? ConfigInt(config, "hidden_size") ?? ProbeHidden();
        string? activation = config is { ValueKind: JsonValueKind.Object } c && c.TryGetProperty("hidden_act", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
        IgnoresClipSkip = activation is null ? HiddenSize == 1024 : activation == "gelu";
        string output = _output;
        _clipSkip = new(() =>
        {
            int layers = 0;
            var session = OnnxModel.LoadRewritten(model.Path, settings, graph => layers = ClipSkipOutputs.Apply(graph, output));
            return new ClipSkipSession(session, layers);
        });
    }

    public static TextEncoder Load(string folder, SessionSettings settings)
    {
        var model = OnnxModel.Open(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new TextEncoder(model, folder, settings));
    }

    /// <summary>
    /// The number of encoder layers, the largest clip skip (found by reading the graph, so the
    /// first call builds the clip-skip session). Null for encoders that ignore clip skip.
    /// </summary>
    public int? ClipSkipLayers => IgnoresClipSkip ? null : _clipSkip.Value.Layers;

    /// <summary>Fails with a message naming the range when this encoder cannot apply <paramref name="clipSkip"/>.</summary>
    public void CheckClipSkip(int clipSkip)
    {
        if (clipSkip < 1) throw new AsyncDiffusionException($"clip skip is {clipSkip}; expected 1 (the last layer) or more.");
        if (clipSkip == 1 || IgnoresClipSkip) return;
        int layers = ClipSkipLayers!.Value;
        if (clipSkip > layers)
            throw new AsyncDiffusionException($"clip skip is {clipSkip}; this model's text encoder has {layers} layers, so expected 1 to {layers}.");
    }

    private int ProbeHidden()
    {
        var ids = new int[77];
        ids[0] = 0;
        Run(Model, ids, 1, _output, out var shape);
        return (int)shape[^1];
    }

    /// <summary>
    /// Encodes <paramref name="batch"/> rows of token ids; returns [batch, sequence, hidden] as
    /// float32. <paramref name="clipSkip"/> N &gt; 1 takes the states N − 1 layers before the last,
    /// through the final layer norm (ignored where <see cref="IgnoresClipSkip"/>).
    /// </summary>
    public float[] Encode(ReadOnlySpan<int> inputIds, int batch, int clipSkip = 1, CancellationToken cancellation = default)
    {
        if (clipSkip <= 1 || IgnoresClipSkip) return Run(Model, inputIds, batch, _output, out _, cancellation);
        CheckClipSkip(clipSkip);
        return Run(_clipSkip.Value.Model, inputIds, batch, ClipSkipOutputs.OutputName(clipSkip), out _, cancellation);
    }

    private float[] Run(OnnxModel model, ReadOnlySpan<int> inputIds, int batch, string output, out long[] shape, CancellationToken cancellation = default)
    {
        var input = Tensors.Ids(inputIds, [batch, inputIds.Length / batch], InputIdsType);
        var outputs = RunFloat(model, [_input], [input], [output], cancellation, out var shapes);
        shape = shapes[0];
        return outputs[0];
    }

    public override void Dispose()
    {
        base.Dispose();
        _clipSkip.Dispose();
    }

    private sealed record ClipSkipSession(OnnxModel Model, int Layers) : IDisposable
    {
        public void Dispose() => Model.Dispose();
    }
}
