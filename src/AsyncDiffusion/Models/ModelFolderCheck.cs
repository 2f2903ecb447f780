using System.Text.Json;
using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Tokenization;

namespace AsyncDiffusion.Models;

/// <summary>
/// What a model folder's JSON files already tell, checked before any ONNX session is created
/// (loading sd15's sessions takes 10–60 s): the component configs' known keys have the types
/// diffusers writes, the components agree where their configs say (text-state width, latent
/// channels, vocabulary size), and the scheduler was trained on at least one step. A problem is
/// one <see cref="ModelFolderException"/> naming the file and what was expected.
/// </summary>
internal static class ModelFolderCheck
{
    // Keys the loaders read (or that must agree across components), with their kinds.
    private static readonly (string Key, Kind Kind)[] TextEncoderKeys = [("hidden_size", Kind.Positive), ("vocab_size", Kind.Positive), ("max_position_embeddings", Kind.Positive)];
    private static readonly (string Key, Kind Kind)[] UNetKeys =
        [("in_channels", Kind.Positive), ("out_channels", Kind.Positive), ("cross_attention_dim", Kind.Positive), ("sample_size", Kind.PositiveOrList), ("block_out_channels", Kind.List)];
    private static readonly (string Key, Kind Kind)[] VaeKeys =
        [("in_channels", Kind.Positive), ("out_channels", Kind.Positive), ("latent_channels", Kind.Positive), ("sample_size", Kind.PositiveOrList), ("block_out_channels", Kind.List), ("scaling_factor", Kind.PositiveNumber)];

    private enum Kind { Positive, PositiveOrList, List, PositiveNumber }

    public static void Run(string folder, ClipTokenizer tokenizer, SchedulerConfig scheduler)
    {
        var text = Read(folder, "text_encoder", TextEncoderKeys);
        var unet = Read(folder, "unet", UNetKeys);
        var decoder = Read(folder, "vae_decoder", VaeKeys);
        Read(folder, "vae_encoder", VaeKeys);
        var vae = Read(folder, "vae", VaeKeys);

        if (Int(unet, "cross_attention_dim") is int cross && Int(text, "hidden_size") is int hidden && cross != hidden)
            throw new ModelFolderException(
                $"'{unet!.Path}' attends to {cross}-wide text states (cross_attention_dim) but '{text!.Path}' produces {hidden} (hidden_size); the text encoder and UNet must come from the same model.");
        var latentConfig = Int(decoder, "latent_channels") is not null ? decoder : vae;
        if (Int(unet, "out_channels") is int unetLatents && Int(latentConfig, "latent_channels") is int vaeLatents && unetLatents != vaeLatents)
            throw new ModelFolderException(
                $"'{unet!.Path}' says out_channels {unetLatents} but '{latentConfig!.Path}' says latent_channels {vaeLatents}; the VAE and UNet must come from the same model.");
        if (Int(text, "vocab_size") is int vocabulary && tokenizer.Vocabulary.Count > vocabulary)
            throw new ModelFolderException(
                $"'{System.IO.Path.Combine(tokenizer.Vocabulary.Source, "vocab.json")}' has {tokenizer.Vocabulary.Count:N0} tokens but '{text!.Path}' says vocab_size {vocabulary:N0}; token ids past {vocabulary - 1} would index beyond the text encoder's embeddings. The tokenizer and text encoder must come from the same model.");

        if (scheduler.Contains("num_train_timesteps") && scheduler.Raw("num_train_timesteps", EmptyDefaults) is double steps && steps < 1)
            throw new ModelFolderException(
                $"'{scheduler.Source}' says num_train_timesteps {steps}; expected the number of steps the model was trained with (1 or more, 1000 for Stable Diffusion).");
    }

    private static readonly Dictionary<string, object?> EmptyDefaults = new();

    /// <summary>Whether a component folder's config.json gives vocab_size (then <see cref="Run"/> has compared it with the tokenizer).</summary>
    public static bool DeclaresVocabulary(string componentFolder) => Int(Read(System.IO.Path.GetDirectoryName(componentFolder)!, System.IO.Path.GetFileName(componentFolder), TextEncoderKeys), "vocab_size") is not null;

    private sealed record Config(string Path, JsonElement Root);

    private static Config? Read(string folder, string component, (string Key, Kind Kind)[] keys)
    {
        string path = System.IO.Path.Combine(folder, component, "config.json");
        if (!File.Exists(path)) return null;
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFolderException($"'{path}' is not valid JSON ({e.Message}).");
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw new ModelFolderException($"'{path}' holds a JSON {root.ValueKind}; expected an object of settings.");
        foreach (var (key, kind) in keys)
            if (root.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null) CheckValue(path, key, kind, value);
        return new Config(path, root);
    }

    private static void CheckValue(string path, string key, Kind kind, JsonElement value)
    {
        string shown = value.GetRawText();
        if (shown.Length > 60) shown = shown[..60] + "…";
        ModelFolderException Wrong(string expected) => new($"'{path}': {key} is {shown}; expected {expected}.");
        bool PositiveInt(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i > 0;
        switch (kind)
        {
            case Kind.Positive when !PositiveInt(value):
                throw Wrong("a positive integer");
            case Kind.PositiveOrList when !PositiveInt(value) && !(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() is > 0 and <= 3 && value.EnumerateArray().All(PositiveInt)):
                throw Wrong("a positive integer or a list of them");
            case Kind.List when !(value.ValueKind == JsonValueKind.Array && value.GetArrayLength() is > 0 and <= 8 && value.EnumerateArray().All(PositiveInt)):
                throw Wrong("a list of 1 to 8 positive integers");
            case Kind.PositiveNumber when !(value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double d) && double.IsFinite(d) && d > 0):
                throw Wrong("a positive number");
        }
    }

    private static int? Int(Config? config, string key) =>
        config is not null && config.Root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : null;
}
