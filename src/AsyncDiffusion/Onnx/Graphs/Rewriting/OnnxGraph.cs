using Google.Protobuf;
using Onnx;

namespace AsyncDiffusion.Onnx.Graphs.Rewriting;

/// <summary>
/// An ONNX model held in memory for rewriting: every initializer's data loaded (external data
/// files included), with lookups from tensor names to initializers, constant nodes, producers
/// and consumers. Rewrites replace nodes through <see cref="ReplaceNodes"/>, which keeps the
/// topological order and refreshes the lookups. Saving moves large tensors to an external data
/// file, as exporters do, so models over protobuf's 2 GB limit round-trip.
/// </summary>
internal sealed class OnnxGraph
{
    private const int ExternalThresholdBytes = 1024;
    private const int ExternalAlignment = 4096; // lets ONNX Runtime map tensors straight from the file

    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorProto> _constantNodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private int _fresh;

    private OnnxGraph(ModelProto model, string source)
    {
        Model = model;
        Source = source;
        Reindex();
    }

    public ModelProto Model { get; }
    public GraphProto Graph => Model.Graph;

    /// <summary>Where the model came from (a path or a name), for messages.</summary>
    public string Source { get; }

    public IReadOnlyCollection<string> GraphOutputs => Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// Reads a model file and the external data files it names (which must lie beside it). With
    /// <paramref name="externalData"/> false, tensors kept in external files stay references: enough
    /// for rewrites that only change nodes, and the weights are never read into memory (see
    /// <see cref="OnnxModel.LoadRewritten"/>).
    /// </summary>
    public static OnnxGraph Load(string path, bool externalData = true)
    {
        if (!File.Exists(path)) throw new ModelFolderException($"'{path}' not found; expected an ONNX model file.");
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelFolderException($"'{path}' is not a readable ONNX protobuf ({e.Message}).");
        }
        if (model.Graph is null) throw new ModelFolderException($"'{path}' has no graph; expected an ONNX model.");
        if (!externalData) return new OnnxGraph(model, path);
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        foreach (var tensor in model.Graph.Initializer)
            if (tensor.DataLocation == TensorProto.Types.DataLocation.External) LoadExternal(tensor, folder, path);
        return new OnnxGraph(model, path);
    }

    /// <summary>A model already parsed (e.g. by <see cref="OnnxStructureReader"/>); <paramref name="source"/> names it in messages.</summary>
    public static OnnxGraph FromModel(ModelProto model, string source) => new(model, source);

    /// <summary>A model built in memory (TAESD, tests).</summary>
    public static OnnxGraph FromBytes(byte[] model, string name) => new(ModelProto.Parser.ParseFrom(model), name);

    public byte[] ToBytes() => Model.ToByteArray();

    /// <summary>
    /// Writes the model to <paramref name="path"/>. With <paramref name="externalDataName"/>,
    /// tensors of 1 KiB or more go to that file beside it and the graph keeps references: after
    /// saving, this graph no longer holds their data.
    /// </summary>
    public void Save(string path, string? externalDataName)
    {
        if (externalDataName is not null)
        {
            string dataPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, externalDataName);
            using var data = new FileStream(dataPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            foreach (var tensor in Graph.Initializer)
            {
                if (tensor.DataLocation == TensorProto.Types.DataLocation.External || tensor.RawData.Length < ExternalThresholdBytes) continue;
                long offset = (data.Position + ExternalAlignment - 1) / ExternalAlignment * ExternalAlignment;
                if (offset > data.Position) data.Write(new byte[offset - data.Position]);
                tensor.RawData.WriteTo(data);
                tensor.DataLocation = TensorProto.Types.DataLocation.External;
                tensor.ExternalData.Clear();
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = externalDataName });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = tensor.RawData.Length.ToString() });
                tensor.RawData = ByteString.Empty;
            }
        }
        using var stream = File.Create(path);
        Model.WriteTo(stream);
    }

    /// <summary>Whether some initializer still refers to an external data file (a graph loaded without its external data).</summary>
    public bool HasExternalData => Graph.Initializer.Any(t => t.DataLocation == TensorProto.Types.DataLocation.External);

    public bool IsInitializer(string name) => _initializers.ContainsKey(name);

    public TensorProto? Initializer(string name) => _initializers.GetValueOrDefault(name);

    /// <summary>The tensor behind a constant value: an initializer or a Constant node's <c>value</c>.</summary>
    public TensorProto? ConstantTensor(string name) =>
        name.Length == 0 ? null : _initializers.GetValueOrDefault(name) ?? _constantNodes.GetValueOrDefault(name);

    public bool IsConstant(string name) => ConstantTensor(name) is not null;

    public NodeProto? Producer(string tensor) => _producers.GetValueOrDefault(tensor);

    public IReadOnlyList<NodeProto> Consumers(string tensor) => _consumers.TryGetValue(tensor, out var list) ? list : [];

    /// <summary>A node's name, or its first output's where it has none: the stem of the names a rewrite gives what replaces it.</summary>
    public static string NameOf(NodeProto node) => node.Name.Length > 0 ? node.Name : node.Output[0];

    /// <summary>A tensor name not used anywhere in the graph yet.</summary>
    public string Fresh(string prefix)
    {
        string name;
        do name = $"{prefix}_{_fresh++}";
        while (!_names.Add(name));
        return name;
    }

    /// <summary>Adds an initializer (its name must be fresh).</summary>
    public string AddInitializer(TensorProto tensor)
    {
        _names.Add(tensor.Name);
        Graph.Initializer.Add(tensor);
        _initializers[tensor.Name] = tensor;
        return tensor.Name;
    }

    /// <summary>Makes sure the model imports <paramref name="domain"/> at <paramref name="version"/> or later.</summary>
    public void RequireOpset(string domain, long version)
    {
        var import = Model.OpsetImport.FirstOrDefault(o => o.Domain == domain || (domain.Length == 0 && o.Domain == "ai.onnx"));
        if (import is null) Model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        else if (import.Version < version) import.Version = version;
    }

    /// <summary>The default domain's opset the model was written for.</summary>
    public long DefaultOpset => Model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;

    /// <summary>
    /// Whether the graph computes in float16 or bfloat16 (initializers, inputs or Casts): the
    /// load-time rewrites target ONNX Runtime's float32 CPU kernels and leave such graphs alone.
    /// </summary>
    public bool HasHalfPrecision
    {
        get
        {
            static bool Half(long type) => (TensorProto.Types.DataType)type is TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16;
            return Graph.Initializer.Any(t => Half(t.DataType))
                || Graph.Input.Any(i => i.Type?.TensorType is { } t && Half(t.ElemType))
                || Graph.Node.Any(n => n.OpType == "Cast" && n.Attribute.FirstOrDefault(a => a.Name == "to") is { } to && Half(to.I));
        }
    }

    /// <summary>
    /// Replaces nodes: each key is removed and its replacement list is inserted where it stood, so
    /// the order stays topological as long as each replacement only reads tensors available there.
    /// Initializers and Constant nodes nothing reads any more are dropped.
    /// </summary>
    public void ReplaceNodes(IReadOnlyDictionary<NodeProto, IReadOnlyList<NodeProto>> replacements)
    {
        var nodes = new List<NodeProto>(Graph.Node.Count);
        foreach (var node in Graph.Node)
        {
            if (replacements.TryGetValue(node, out var with)) nodes.AddRange(with);
            else nodes.Add(node);
        }
        var read = new HashSet<string>(nodes.SelectMany(n => n.Input), StringComparer.Ordinal);
        read.UnionWith(Graph.Output.Select(o => o.Name));
        // Constant nodes that held replaced weights go with them.
        nodes.RemoveAll(n => n.OpType == "Constant" && n.Domain is "" or "ai.onnx" && !n.Output.Any(read.Contains));
        Graph.Node.Clear();
        Graph.Node.AddRange(nodes);

        var unused = Graph.Initializer.Where(t => !read.Contains(t.Name)).ToList();
        foreach (var t in unused) Graph.Initializer.Remove(t);
        Reindex();
    }

    /// <summary>
    /// Removes nodes whose outputs nothing reads (what a rewrite left behind: the head splits and
    /// shape computations of a fused attention), then the initializers nothing reads any more.
    /// Nodes with subgraphs keep every tensor their subgraphs name alive.
    /// </summary>
    public void RemoveUnusedNodes()
    {
        var live = new HashSet<string>(Graph.Output.Select(o => o.Name), StringComparer.Ordinal);
        var kept = new List<NodeProto>(Graph.Node.Count);
        for (int n = Graph.Node.Count - 1; n >= 0; n--)
        {
            var node = Graph.Node[n];
            if (!node.Output.Any(live.Contains)) continue;
            kept.Add(node);
            live.UnionWith(node.Input.Where(i => i.Length > 0));
            foreach (var sub in node.Attribute.SelectMany(a => a.G is null ? a.Graphs : a.Graphs.Append(a.G)))
                live.UnionWith(SubgraphNames(sub));
        }
        if (kept.Count == Graph.Node.Count) return;
        kept.Reverse();
        Graph.Node.Clear();
        Graph.Node.AddRange(kept);
        var unused = Graph.Initializer.Where(t => !live.Contains(t.Name)).ToList();
        foreach (var t in unused) Graph.Initializer.Remove(t);
        Reindex();
    }

    private static IEnumerable<string> SubgraphNames(GraphProto graph) =>
        graph.Node.SelectMany(n => n.Input.Concat(n.Attribute.SelectMany(a => a.G is null ? a.Graphs : a.Graphs.Append(a.G)).SelectMany(SubgraphNames)));

    /// <summary>Adds nodes after all others (they may read any tensor the graph computes) and refreshes the lookups.</summary>
    public void AppendNodes(IEnumerable<NodeProto> nodes)
    {
        Graph.Node.AddRange(nodes);
        Reindex();
    }

    /// <summary>Adds a graph output <paramref name="name"/> with the type of the existing output <paramref name="like"/>.</summary>
    public void AddOutputLike(string name, string like)
    {
        var template = Graph.Output.FirstOrDefault(o => o.Name == like)
            ?? throw new InvalidOperationException($"'{Source}' has no output '{like}'.");
        var output = template.Clone();
        output.Name = name;
        Graph.Output.Add(output);
        _names.Add(name);
    }

    /// <summary>Adds graph outputs for the given tensors (float), for calibration copies.</summary>
    public void ExposeAsOutputs(IEnumerable<string> tensors)
    {
        var existing = GraphOutputs;
        foreach (var name in tensors.Where(t => !existing.Contains(t)).Distinct(StringComparer.Ordinal))
            Graph.Output.Add(new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
    }

    private void Reindex()
    {
        _initializers.Clear();
        _constantNodes.Clear();
        _producers.Clear();
        _consumers.Clear();
        _names.Clear();
        foreach (var t in Graph.Initializer)
        {
            _initializers[t.Name] = t;
            _names.Add(t.Name);
        }
        foreach (var i in Graph.Input) _names.Add(i.Name);
        foreach (var node in Graph.Node)
        {
            foreach (var o in node.Output.Where(o => o.Length > 0))
            {
                _producers[o] = node;
                _names.Add(o);
            }
            foreach (var i in node.Input.Where(i => i.Length > 0))
            {
                if (!_consumers.TryGetValue(i, out var list)) _consumers[i] = list = [];
                if (!list.Contains(node)) list.Add(node);
            }
            if (node.OpType == "Constant" && node.Domain is "" or "ai.onnx" && node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } value)
                _constantNodes[node.Output[0]] = value;
            if (node.Name.Length > 0) _names.Add(node.Name);
        }
    }

    private static void LoadExternal(TensorProto tensor, string folder, string modelPath)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var entry in tensor.ExternalData)
        {
            switch (entry.Key)
            {
                case "location": location = entry.Value; break;
                case "offset": offset = long.Parse(entry.Value); break;
                case "length": length = long.Parse(entry.Value); break;
            }
        }
        if (location is null || System.IO.Path.IsPathRooted(location) || location.Split('/', '\\').Contains(".."))
            throw new ModelFolderException($"'{modelPath}': tensor '{tensor.Name}' names external data '{location}'; expected a file beside the model.");
        string file = System.IO.Path.Combine(folder, location);
        if (!File.Exists(file)) throw new ModelFolderException($"'{modelPath}' keeps tensor '{tensor.Name}' in '{location}', which is not beside it.");
        using var stream = File.OpenRead(file);
        if (length < 0) length = stream.Length - offset;
        if (offset < 0 || offset + length > stream.Length)
            throw new ModelFolderException($"'{file}' is shorter than tensor '{tensor.Name}' needs (offset {offset}, length {length}); the external data file is truncated.");
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
        tensor.DataLocation = TensorProto.Types.DataLocation.Default;
        tensor.ExternalData.Clear();
    }
}
