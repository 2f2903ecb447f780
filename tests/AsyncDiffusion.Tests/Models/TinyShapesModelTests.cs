using System.Security.Cryptography;
using System.Text.Json;
using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Tests.Models;

/// <summary>The built-in trained model: the graph builder binds the shipped weights by name and computes what torch computed.</summary>
public class TinyShapesModelTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly Lazy<string> Built = new(() =>
    {
        string folder = Path.Combine(Directory.CreateTempSubdirectory("asyncdiffusion-tiny-shapes-").FullName, "model");
        TinyShapesModel.Write(folder);
        return folder;
    });

    /// <summary>The shipped model folder, written once per test run.</summary>
    public static string Folder => Built.Value;

    private static JsonElement Fixture()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Models", "Data", "tiny_shapes_parity.json");
        return JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;
    }

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Fact]
    public void TheParityFixtureWasMadeFromTheShippedWeights()
    {
        string hash = Convert.ToHexStringLower(SHA256.HashData(TinyShapesModel.BuiltInWeightsBytes))[..12];
        Assert.True(hash == Fixture().GetProperty("weights_sha256_prefix").GetString(),
            "The shipped weights changed: regenerate the fixture with /usr/bin/python3 tools/train-tiny-model/parity.py");
    }

    [Fact]
    public void TheOnnxTextEncoderAndUNetComputeWhatTorchComputed()
    {
        var f = Fixture();
        using var model = ModelFolder.Open(Folder);
        var ids = f.GetProperty("input_ids").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.Equal(ids, model.Tokenizer.Encode(f.GetProperty("caption").GetString()!).InputIds);

        var states = model.TextEncoder.Encode(ids, 1);
        var expectedStates = Floats(f.GetProperty("text_states_first_16_tokens"));
        AssertClose(expectedStates, states.AsSpan(0, expectedStates.Length).ToArray(), "text encoder");

        var sample = Floats(f.GetProperty("sample"));
        int side = TinyShapesModel.ImageSize / 8;
        var output = model.UNet.Predict(sample, [1, 4, side, side], [f.GetProperty("timestep").GetDouble()], states, [1, 77, TinyShapesModel.TextEncoder.Hidden]);
        AssertClose(Floats(f.GetProperty("unet_output")), output, "UNet");
    }

    [Fact]
    public void TheFolderHasTheSdContractWithTaesdAsItsVae()
    {
        using var model = ModelFolder.Open(Folder);
        Assert.Equal(TinyShapesModel.ImageSize, model.NativeSize);
        Assert.Equal(1.0, model.ScalingFactor);
        Assert.Equal(8, model.VaeScaleFactor);
        Assert.Null(model.SyntheticPreset);
        Assert.Equal(VaeEncoderOutput.LatentParameters, model.VaeEncoder!.Output);
        Assert.Equal(49408, model.Tokenizer.Vocabulary.Count);
        Assert.Equal("PNDMScheduler", model.SchedulerConfig.ClassName);
        Assert.Equal(TinyShapesModel.GuidanceScale, model.RecommendedGuidanceScale);
    }

    [Fact]
    public void WeightsForAnotherConfigurationAreRefusedNamingTheTensor()
    {
        using var dir = new TempFolder();
        var shipped = TinyShapesModel.BuiltInWeightsBytes;
        // Rename one tensor in the header (same length, so offsets stay valid).
        string text = System.Text.Encoding.Latin1.GetString(shipped);
        string renamed = text.Replace("\"conv_in.weight\"", "\"conv_xx.weight\"");
        var weights = SafeTensors.Parse(System.Text.Encoding.Latin1.GetBytes(renamed), "edited.safetensors");
        var e = Assert.Throws<ModelFolderException>(() => TinyShapesModel.Write(Path.Combine(dir.Path, "m"), weights));
        Assert.Contains("the weights in 'edited.safetensors' have no tensor 'conv_in.weight' (unet, shape [32, 4, 3, 3])", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m")));
    }

    [Fact]
    public void WeightsWithLinearLayersStoredInOutAreRefusedNamingTheShapes()
    {
        // The training tool's earlier export stored Linear weights [in, out]; a square one would bind
        // silently transposed, so every shape is checked, not just the element count.
        using var dir = new TempFolder();
        var weights = CopyOfShippedWeights(Path.Combine(dir.Path, "old-layout.safetensors"),
            (name, shape) => name == "time_embedding.linear_1.weight" ? [shape[1], shape[0]] : shape);
        var e = Assert.Throws<ModelFolderException>(() => TinyShapesModel.Write(Path.Combine(dir.Path, "m"), weights));
        Assert.Contains("tensor 'time_embedding.linear_1.weight' has shape [32, 128]; unet needs [128, 32]", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m")));
    }

    [Fact]
    public void WeightsWithATensorTheGraphsDoNotUseAreRefused()
    {
        using var dir = new TempFolder();
        var weights = CopyOfShippedWeights(Path.Combine(dir.Path, "extra.safetensors"), (_, shape) => shape,
            new Checkpoints.FakeTensor("up_blocks.2.resnets.0.conv1.bias", "F16", [32], new float[32]));
        var e = Assert.Throws<ModelFolderException>(() => TinyShapesModel.Write(Path.Combine(dir.Path, "m"), weights));
        Assert.Contains("has 1 tensor(s) the graphs do not use, e.g. 'up_blocks.2.resnets.0.conv1.bias'", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "m")));
    }

    /// <summary>The shipped weights written to a file with each tensor's shape as <paramref name="shapeOf"/> says, plus any extra tensors.</summary>
    private static SafeTensors CopyOfShippedWeights(string file, Func<string, long[], long[]> shapeOf, params Checkpoints.FakeTensor[] extra)
    {
        var shipped = TinyShapesModel.BuiltInWeights;
        Checkpoints.SafeTensorsWriter.Write(file, shipped.Names.Select(name =>
        {
            var (shape, values) = shipped[name];
            return new Checkpoints.FakeTensor(name, "F16", shapeOf(name, shape), values);
        }).Concat(extra));
        return SafeTensors.Load(file);
    }

    private void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]) / (1e-3 + Math.Abs(expected[i])));
        log.WriteLine($"{what}: worst relative difference {worst:G3} over {expected.Length} values");
        Assert.True(worst < 1e-3, $"{what}: worst relative difference {worst:G3}");
    }
}
