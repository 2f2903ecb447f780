using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Models.Synthetic;

/// <summary>
/// A small helper over the ONNX protobuf classes: graph inputs/outputs, named parameters
/// (seeded, in the model's float type, embedded or in an external data file), constants and
/// nodes. The parameter names follow diffusers' state-dict names, so counts and inspection
/// read like a real export.
/// </summary>
internal sealed class OnnxGraphBuilder : IDisposable
{
    public const int Opset = 21;      // GroupNormalization with per-channel scale, Gelu
    public const long IrVersion = 10; // IR that opset 21 needs

    private readonly GraphProto _graph = new();
    private readonly SeededWeights _weights;
    private readonly FileStream? _external;
    private readonly string? _externalName;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly bool _shapesOnly;
    private readonly TrainedWeights? _trained;
    private int _next;

    /// <param name="half">Store parameters, inputs and outputs as float16.</param>
    /// <param name="externalDataPath">When set, parameters go to this file (named relative to the model) instead of the protobuf.</param>
    /// <param name="trained">When set, every learned parameter is taken from it by name (instead of seeded or filled values).</param>
    public OnnxGraphBuilder(string name, SeededWeights weights, bool half, string? externalDataPath = null, bool shapesOnly = false, TrainedWeights? trained = null)
    {
        _shapesOnly = shapesOnly;
        _trained = trained;
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

    /// <summary>A learned parameter with seeded uniform values of the given standard deviation.</summary>
    public string Parameter(string name, long[] shape, double std)
    {
        if (_trained is not null) return Parameter(name, shape, _trained.Take(name, shape));
        if (!_shapesOnly) return Parameter(name, shape, _weights.Uniform(name, shape.Aggregate(1L, (a, b) => a * b), std));
        // Shape-only graphs (for FLOP counting and inspection) carry dims without data.
        NewParameter(name, shape);
        return name;
    }

    /// <summary>A learned parameter filled with one value (norm scales, zero biases).</summary>
    public string Filled(string name, long[] shape, float value)
    {
        if (_trained is not null) return Parameter(name, shape, _trained.Take(name, shape));
        var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
        Array.Fill(data, value);
        return Parameter(name, shape, data);
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
        else tensor.RawData = ByteString.CopyFrom(bytes);
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
