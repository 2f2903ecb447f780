using AsyncDiffusion.Onnx;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace AsyncDiffusion.Models;

/// <summary>The CLIP text encoder: token ids [batch, 77] → hidden states [batch, 77, hidden] (int32 or int64 ids, fp32 or fp16 states).</summary>
public sealed class TextEncoder : ModelComponent
{
    private readonly string _input, _output;

    public TensorElementType InputIdsType { get; }
    public TensorElementType OutputType { get; }
    public int HiddenSize { get; }
    public bool HasPooler { get; }

    private TextEncoder(OnnxModel model, string folder) : base(model)
    {
        _input = InputNamed("input_ids", 0, "input_ids, int32 or int64 [batch, sequence]");
        _output = OutputNamed("last_hidden_state", 0, "last_hidden_state, float [batch, sequence, hidden]");
        InputIdsType = ElementType(_input, true, TensorElementType.Int32, TensorElementType.Int64);
        OutputType = ElementType(_output, false, TensorElementType.Float, TensorElementType.Float16);
        HasPooler = model.OutputNames.Contains("pooler_output");
        HiddenSize = StaticDimension(_output, false, -1) ?? ConfigInt(ReadConfig(folder), "hidden_size") ?? ProbeHidden();
    }

    public static TextEncoder Load(string folder, SessionSettings settings)
    {
        var model = OnnxModel.Open(System.IO.Path.Combine(folder, "model.onnx"), settings);
        return Guard(model, () => new TextEncoder(model, folder));
    }

    private int ProbeHidden()
    {
        var ids = new int[77];
        ids[0] = 0;
        var states = Encode(ids, 1, out var shape);
        return (int)shape[^1];
    }

    /// <summary>Encodes <paramref name="batch"/> rows of token ids; returns [batch, sequence, hidden] as float32.</summary>
    public float[] Encode(ReadOnlySpan<int> inputIds, int batch, CancellationToken cancellation = default) => Encode(inputIds, batch, out _, cancellation);

    private float[] Encode(ReadOnlySpan<int> inputIds, int batch, out long[] shape, CancellationToken cancellation = default)
    {
        var input = Tensors.Ids(inputIds, [batch, inputIds.Length / batch], InputIdsType);
        var outputs = RunFloat(Model, [_input], [input], [_output], cancellation, out var shapes);
        shape = shapes[0];
        return outputs[0];
    }
}
