#:project ../../src/AsyncDiffusion/AsyncDiffusion.csproj
#:property JsonSerializerIsReflectionEnabledByDefault=true
#:property PublishAot=false
// What clip skip and seamless tiling cost: run with `dotnet run -c Release bench/scripts/variant-sessions.cs [SCRATCH_DIR]`.
// 1. Clip skip: a synthetic model with SD 1.5's text encoder (123 M parameters, 492 MB, self-contained like
//    optimum's export); load time, encode time with clip skip 1 (the model's own session) and 2/12 (the
//    rewritten session), and the memory the rewritten session takes when it is built on first use.
// 2. Tiling: four 3×3 convolutions at SD's first UNet level for 512 px (320 channels, 64×64 latents,
//    batch 2) with zero padding, with Pad(wrap) (opset 19+) and with Slice + Concat (older opsets), as the
//    circular-padding rewrite writes them: alone (a worst case), and each after GroupNorm + SiLU as in
//    the UNet's resnet blocks; runs interleaved, medians.
using System.Diagnostics;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;
using AsyncDiffusion.Onnx;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;

string scratch = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "asyncdiffusion-variant-sessions");
string folder = Path.Combine(scratch, "sd15-text-encoder");
if (!File.Exists(Path.Combine(folder, "text_encoder", "model.onnx")))
    SyntheticModelWriter.Write(folder, SyntheticPreset.Tiny with { Name = "sd15-text-encoder", TextEncoder = ClipTextConfig.Sd15 });

long Rss() { GC.Collect(2, GCCollectionMode.Aggressive, true, true); var p = Process.GetCurrentProcess(); p.Refresh(); return p.WorkingSet64 >> 20; }
long Peak() => long.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) >> 10;
double Median(List<double> t) { t.Sort(); return t[t.Count / 2]; }

var clock = Stopwatch.StartNew();
using (var encoder = TextEncoder.Load(Path.Combine(folder, "text_encoder"), SessionSettings.Default))
{
    Console.WriteLine($"text encoder loaded in {clock.ElapsedMilliseconds} ms; RSS {Rss()} MiB");
    var ids = Enumerable.Range(0, 154).Select(i => i % 77 == 0 ? 49406 : i % 77 < 10 ? 320 + i : 49407).ToArray();
    double Encode(int skip) { var t = new List<double>(); for (int i = 0; i < 7; i++) { var c = Stopwatch.StartNew(); encoder.Encode(ids, 2, skip); t.Add(c.Elapsed.TotalMilliseconds); } return Median(t); }
    encoder.Encode(ids, 2);
    double one = Encode(1);
    long before = Rss();
    clock.Restart();
    encoder.Encode(ids, 2, 2);
    long built = clock.ElapsedMilliseconds;
    Console.WriteLine($"clip-skip session built on first use in {built} ms: RSS {before} -> {Rss()} MiB (peak {Peak()} MiB)");
    Console.WriteLine($"encode [2, 77], median of 7: clip skip 1 {one:F0} ms, 2 {Encode(2):F0} ms, 12 {Encode(12):F0} ms, 1 again {Encode(1):F0} ms");
}

const int C = 320, H = 64, B = 2;
var rng = new Random(1);
float[] weights = Enumerable.Range(0, C * C * 9).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.05f).ToArray();
float[] x = Enumerable.Range(0, B * C * H * H).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
string[] paddings = ["zero padding", "Pad(wrap)", "Slice + Concat"];
var sessions = new[] { false, true }.SelectMany(norm => paddings.Select((name, kind) =>
    ($"{(norm ? "GroupNorm + SiLU + conv" : "conv")} ×4, {name}", Session(kind, norm)))).ToArray();
var times = sessions.Select(_ => new List<double>()).ToArray();
using var input = OrtValue.CreateTensorValueFromMemory(x, [B, C, H, H]);
for (int round = 0; round < 6; round++)
    for (int s = 0; s < sessions.Length; s++)
    {
        var c = Stopwatch.StartNew();
        using var output = sessions[s].Item2.Run(new RunOptions(), ["x"], [input], ["y"]);
        if (round > 0) times[s].Add(c.Elapsed.TotalMilliseconds);
    }
for (int s = 0; s < sessions.Length; s++) Console.WriteLine($"[2, 320, 64, 64], 3×3 320→320, {sessions[s].Item1}: median {Median(times[s]):F0} ms");

InferenceSession Session(int kind, bool norm)
{
    var g = new GraphProto { Name = "convs" };
    var shape = new TensorShapeProto();
    foreach (long d in new long[] { B, C, H, H }) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
    g.Input.Add(new ValueInfoProto { Name = "x", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } });
    g.Output.Add(new ValueInfoProto { Name = "y", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
    g.Initializer.Add(Tensor("w", 1, [C, C, 3, 3], MemoryExtensions.AsSpan(weights)));
    foreach (var (name, values) in new (string, long[])[] { ("pads", [0, 0, 1, 1, 0, 0, 1, 1]), ("m1", [-1]), ("max", [long.MaxValue]), ("zero", [0]), ("one", [1]), ("a2", [2]), ("a3", [3]) })
        g.Initializer.Add(Tensor(name, 7, [values.Length], MemoryExtensions.AsSpan(values)));
    g.Initializer.Add(Tensor("gamma", 1, [C], MemoryExtensions.AsSpan(Enumerable.Repeat(1f, C).ToArray())));
    g.Initializer.Add(Tensor("beta", 1, [C], MemoryExtensions.AsSpan(new float[C])));
    string h = "x";
    for (int layer = 0; layer < 4; layer++)
    {
        if (norm)
        {
            g.Node.Add(Node("GroupNormalization", [h, "gamma", "beta"], $"n{layer}", ("num_groups", 32L)));
            g.Node.Add(Node("Sigmoid", [$"n{layer}"], $"s{layer}"));
            g.Node.Add(Node("Mul", [$"n{layer}", $"s{layer}"], $"silu{layer}"));
            h = $"silu{layer}";
        }
        string padded = h, output = layer == 3 ? "y" : $"h{layer}";
        if (kind == 1) g.Node.Add(Node("Pad", [h, "pads"], padded = $"p{layer}", ("mode", "wrap")));
        if (kind == 2)
            foreach (var (axis, number) in new[] { ("a3", 3L), ("a2", 2L) })
            {
                g.Node.Add(Node("Slice", [padded, "m1", "max", axis], $"l{layer}{axis}"));
                g.Node.Add(Node("Slice", [padded, "zero", "one", axis], $"r{layer}{axis}"));
                g.Node.Add(Node("Concat", [$"l{layer}{axis}", padded, $"r{layer}{axis}"], $"c{layer}{axis}", ("axis", number)));
                padded = $"c{layer}{axis}";
            }
        g.Node.Add(Node("Conv", [padded, "w"], output, ("pads", kind == 0 ? new long[] { 1, 1, 1, 1 } : new long[] { 0, 0, 0, 0 })));
        h = output;
    }
    var model = new ModelProto { IrVersion = 9, Graph = g };
    model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 21 }); // GroupNormalization-21; Slice and Concat are the same in older opsets
    model.IrVersion = 10;
    using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
    return new InferenceSession(model.ToByteArray(), options);
}

static TensorProto Tensor<T>(string name, int type, long[] dims, ReadOnlySpan<T> values) where T : unmanaged
{
    var t = new TensorProto { Name = name, DataType = type, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values)) };
    t.Dims.AddRange(dims);
    return t;
}

static NodeProto Node(string op, string[] inputs, string output, params (string Name, object Value)[] attributes)
{
    var n = new NodeProto { OpType = op, Output = { output } };
    n.Input.AddRange(inputs);
    foreach (var (name, value) in attributes)
        n.Attribute.Add(value switch
        {
            string s => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(s) },
            long i => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = i },
            long[] ints => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints, Ints = { ints } },
            _ => throw new ArgumentException(name),
        });
    return n;
}
