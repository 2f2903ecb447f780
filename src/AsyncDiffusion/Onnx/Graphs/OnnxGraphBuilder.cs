using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs;

/// <summary>
/// A small helper over the ONNX protobuf classes: graph inputs/outputs, named parameters
/// (from a weight source — seeded, a dictionary, a checkpoint — in the model's float type,
/// embedded or in an external data file), constants and nodes. The parameter names and shapes
/// follow diffusers' state dicts, so real weights bind by name and counts read like a real export.
/// </summary>
internal sealed class OnnxGraphBuilder : IDisposable
{
    public const int Opset = 21;      // GroupNormalization with per-channel scale, Gelu
    public const long IrVersion = 10; // IR that opset 21 needs

    private readonly GraphProto _graph = new();
    private readonly IWeightSource _weights;
    private readonly List<ParameterSpec> _specs = new();
    private readonly FileStream? _external;
    private readonly string? _externalName;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly bool _shapesOnly;
    private int _next;

    /// <param name="name">The graph's name.</param>
    /// <param name="weights">Where parameter values come from.</param>
    /// <param name="half">Store parameters, inputs and outputs as float16.</param>
    /// <param name="externalDataPath">When set, parameters go to this file (named relative to the model) instead of the protobuf.</param>
    /// <param name="shapesOnly">Record parameter shapes without values (for counting FLOPs and parameters).</param>
    public OnnxGraphBuilder(string name, IWeightSource weights, bool half, string? externalDataPath = null, bool shapesOnly = false)
    {
        _shapesOnly = shapesOnly;
        _graph.Name = name;
        _weights = weights;
        Half = half;
        if (externalDataPath is not null)
        {
            _external = new FileStream(externalDataPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            _externalName = Path.GetFileName(externalDataPath);
        }
    }

    public bool Half { get; }
    public TensorProto.Types.DataType FloatType => Half ? TensorProto.Types.DataType.Float16 : TensorProto.Types.DataType.Float;
    public long ParameterCount { get; private set; }

    /// <summary>The learned parameters asked of the weight source so far, in graph order.</summary>
    public IReadOnlyList<ParameterSpec> Specs => _specs;

    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        _graph.Input.Add(ValueInfo(name, type, dims));
        _names.Add(name);
        return name;
    }

    public void Output(string name, string value, TensorProto.Types.DataType type, params object[] dims)
    {
        Node("Identity", [value], [name]);
        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    /// <summary>A learned parameter drawn with uniform values of the given standard deviation, unless the weight source binds it.</summary>
    public string Parameter(string name, long[] shape, double std) => Parameter(name, shape, ParameterInit.Uniform(std));

    /// <summary>A learned parameter filled with one value (norm scales, zero biases), unless the weight source binds it.</summary>
    public string Filled(string name, long[] shape, float value) => Parameter(name, shape, ParameterInit.Constant(value));

    /// <summary>
    /// A learned parameter of state-dict shape <paramref name="shape"/> whose values come from the
    /// weight source; <paramref name="transposed"/> stores a 2-D [out, in] weight as [in, out].
    /// </summary>
    public string Parameter(string name, long[] shape, ParameterInit init, bool transposed = false)
    {
        if (transposed && shape.Length != 2) throw new ArgumentException($"Only 2-D parameters are stored transposed ({name}).");
        var spec = new ParameterSpec(_graph.Name, name, shape, init, transposed);
        _specs.Add(spec);
        long[] stored = transposed ? [shape[1], shape[0]] : shape;
        if (_shapesOnly)
        {
            // Shape-only graphs (for FLOP counting and inspection) carry dims without data.
            NewParameter(name, stored);
            return name;
        }
        var values = _weights.Values(spec);
        if (values.LongLength != spec.ElementCount)
            throw new InvalidOperationException($"The weight source gave {values.LongLength} values for {name} {spec.ShapeText}.");
        return Parameter(name, stored, transposed ? Transpose(values, (int)shape[0], (int)shape[1]) : values);
    }

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) result[(long)c * rows + r] = values[(long)r * columns + c];
        return result;
    }

    public string Parameter(string name, long[] shape, float[] values)
    {
        var tensor = NewParameter(name, shape);
        byte[] bytes = Half ? ToHalfBytes(values) : ToBytes(values);
        if (_external is not null && bytes.Length >= 1024)
        {
            long offset = _external.Position;
            _external.Write(bytes);
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = _externalName });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString() });
        }
        else tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes); // bytes is ours and never changes: no second copy
        return name;
    }

    // Registers a learned parameter (unique name, dims, counted); the caller adds its data.
    private TensorProto NewParameter(string name, long[] shape)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"Duplicate tensor name {name}.");
        var tensor = new TensorProto { Name = name, DataType = (int)FloatType };
        tensor.Dims.AddRange(shape);
        ParameterCount += shape.Aggregate(1L, (a, b) => a * b);
        _graph.Initializer.Add(tensor);
        return tensor;
    }

    /// <summary>A constant in the model's float type.</summary>
    public string Float(params float[] values) => Constant(values, FloatType, values.Length == 1 ? [] : [values.Length]);

    /// <summary>A float32 constant regardless of the model's precision.</summary>
    public string Float32(float[] values, long[] shape) => Constant(values, TensorProto.Types.DataType.Float, shape);

    public string Int64(params long[] values) => Int64Shaped(values, [values.Length]);

    public string Int64Shaped(long[] values, long[] shape)
    {
        string name = Fresh("const");
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.AddRange(shape);
        var bytes = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        tensor.RawData = ByteString.CopyFrom(bytes);
        _graph.Initializer.Add(tensor);
        return name;
    }

    private string Constant(float[] values, TensorProto.Types.DataType type, long[] shape)
    {
        string name = Fresh("const");
        var tensor = new TensorProto { Name = name, DataType = (int)type };
        tensor.Dims.AddRange(shape);
        tensor.RawData = ByteString.CopyFrom(type == TensorProto.Types.DataType.Float16 ? ToHalfBytes(values) : ToBytes(values));
        _graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string Op(string opType, string[] inputs, params (string Name, object Value)[] attributes) =>
        Node(opType, inputs, [Fresh(opType)], attributes)[0];

    public string[] Node(string opType, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes) =>
        Node(opType, "", inputs, outputs, attributes);

    public string[] Node(string opType, string domain, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Fresh(opType + "_node"), Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (name, value) in attributes) node.Attribute.Add(Attribute(name, value));
        _graph.Node.Add(node);
        foreach (var o in outputs) _names.Add(o);
        return outputs;
    }

    public string Fresh(string prefix) => $"/{prefix}_{_next++}";

    public ModelProto Build(string producer)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = producer,
            ProducerVersion = "1",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model;
    }

    /// <summary>The model as protobuf bytes, for graphs built in memory (TAESD, the probe).</summary>
    public byte[] ToBytes(string producer) => Build(producer).ToByteArray();

    /// <summary>Writes the model (and flushes its external data file).</summary>
    public void Save(string path, string producer)
    {
        _external?.Flush();
        using var stream = File.Create(path);
        Build(producer).WriteTo(stream);
    }

    public void Dispose() => _external?.Dispose();

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private static AttributeProto Attribute(string name, object value) => value switch
    {
        int i => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = i },
        long l => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = l },
        float f => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = f },
        string s => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(s) },
        long[] ls => WithInts(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints }, ls),
        int[] iss => WithInts(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints }, iss.Select(x => (long)x)),
        float[] fs => WithFloats(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats }, fs),
        _ => throw new ArgumentException($"Unsupported attribute type {value.GetType()} for {name}."),
    };

    private static AttributeProto WithInts(AttributeProto a, IEnumerable<long> values) { a.Ints.AddRange(values); return a; }
    private static AttributeProto WithFloats(AttributeProto a, IEnumerable<float> values) { a.Floats.AddRange(values); return a; }

    private static byte[] ToBytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }

    private static byte[] ToHalfBytes(float[] values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), BitConverter.HalfToUInt16Bits((Half)values[i]));
        return bytes;
    }
}
