using System.Text.RegularExpressions;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>
/// A checkpoint opened for conversion: a single <c>.safetensors</c> file in the original LDM layout
/// (A1111, civitai) or a diffusers folder of safetensors files, memory-mapped, with its family
/// detected from tensor names and shapes (or the folder's configs). Anything that is not SD 1.x or
/// SD 2.x (SDXL, SD 3, Flux, a LoRA or VAE given as a model) is refused with a message saying
/// what it is. Owns the mapped files.
/// </summary>
internal sealed partial class OpenedCheckpoint : IDisposable
{
    private const string UNetPrefix = "model.diffusion_model.";
    private const string VaePrefix = "first_stage_model.";

    // LatentDiffusion's schedule buffers: the scheduler config replaces them (tools users know ignore them too).
    private static readonly HashSet<string> DdpmBuffers = new(StringComparer.Ordinal)
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    };

    private readonly List<SafeTensors> _files = new();
    private string? _textPrefix;     // single files: where the text tower is
    private bool _oldClipNames;      // single files: CLIP without the "text_model." level
    private VaeTensors? _vae;        // --vae, or a diffusers folder's vae/
    private List<SafeTensors> _unetFiles = new(), _textFiles = new(); // diffusers folders

    private OpenedCheckpoint(string source) => Source = source;

    public string Source { get; }
    public CheckpointKind Kind { get; private set; } = null!;

    /// <summary>Files whose content identifies the checkpoint (for the cache key).</summary>
    public List<string> ContentFiles { get; } = new();

    /// <summary>A diffusers folder's own architecture, scheduler config and tokenizer; null for single files.</summary>
    public SyntheticPreset? Architecture { get; private set; }
    public string? SchedulerJson { get; private set; }
    public string? TokenizerFolder { get; private set; }

    /// <summary>The stand-alone VAE in use (--vae), if any.</summary>
    public string? VaeFile { get; private set; }

    /// <summary>Every file opened (checkpoint, shards, --vae).</summary>
    public IReadOnlyList<SafeTensors> Files => _files;

    /// <summary>The main file of a single-file checkpoint.</summary>
    public SafeTensors? SingleFile => Kind.DiffusersFolder ? null : _files[0];

    public static OpenedCheckpoint Open(string source)
    {
        var opened = new OpenedCheckpoint(Path.GetFullPath(source));
        try
        {
            if (Directory.Exists(source)) opened.OpenDiffusersFolder();
            else if (File.Exists(source)) opened.OpenSingleFile();
            else throw new ModelFolderException($"'{source}' does not exist; expected a .safetensors checkpoint or a diffusers folder.");
            return opened;
        }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>Takes the VAE from a stand-alone file instead (LDM names with or without <c>first_stage_model.</c>, or diffusers names).</summary>
    public void UseVae(string path)
    {
        var file = Track(SafeTensors.Open(path));
        var names = file.Names;
        string? prefix = names.Contains("encoder.down.0.block.0.conv1.weight") ? ""
            : names.Contains(VaePrefix + "encoder.down.0.block.0.conv1.weight") ? VaePrefix
            : names.Contains("vae.encoder.down.0.block.0.conv1.weight") ? "vae."
            : null;
        if (prefix is not null) _vae = new VaeTensors(file, prefix, Ldm: true);
        else if (names.Contains("encoder.down_blocks.0.resnets.0.conv1.weight")) _vae = new VaeTensors(file, "", Ldm: false);
        else if (names.Contains("vae.encoder.down_blocks.0.resnets.0.conv1.weight")) _vae = new VaeTensors(file, "vae.", Ldm: false);
        else throw new ModelFolderException($"--vae '{path}' is not a Stable Diffusion VAE: it has no encoder.down.0.block.0.conv1.weight (LDM names) or encoder.down_blocks.0.resnets.0.conv1.weight (diffusers names); {FirstNames(names)}.");
        VaeFile = Path.GetFullPath(path);
        ContentFiles.Add(VaeFile);
    }

    /// <summary>Where each component's parameters are, for an architecture (the UNet's names depend on its levels).</summary>
    public IReadOnlyDictionary<string, ComponentTensors> Components(SyntheticPreset architecture)
    {
        var unet = architecture.UNet;
        int vaeLevels = architecture.Vae.BlockOutChannels.Length;
        if (_vae is null)
            throw new ModelFolderException($"'{Source}' has no VAE (first_stage_model.* tensors); give one with --vae FILE.");
        var vae = _vae.Map(vaeLevels);
        if (Kind.DiffusersFolder)
        {
            return new Dictionary<string, ComponentTensors>
            {
                ["text_encoder"] = new("text_encoder", _textFiles, n => [new LdmTensor(n)]),
                ["unet"] = new("unet", _unetFiles, n => [new LdmTensor(n)]),
                ["vae_decoder"] = vae,
                ["vae_encoder"] = vae,
            };
        }
        var file = _files[0];
        Func<string, IEnumerable<LdmTensor>> text = Kind.Family == ModelFamily.Sd2
            ? n => LdmNames.OpenClip(n) is { } t ? [t with { Key = _textPrefix + t.Key }] : []
            : n => [new LdmTensor(_textPrefix + (_oldClipNames && n.StartsWith("text_model.", StringComparison.Ordinal) ? n["text_model.".Length..] : n))];
        return new Dictionary<string, ComponentTensors>
        {
            ["text_encoder"] = new("text_encoder", [file], text),
            ["unet"] = new("unet", [file], n => LdmNames.UNet(n, unet) is { } k ? [new LdmTensor(UNetPrefix + k)] : []),
            ["vae_decoder"] = vae,
            ["vae_encoder"] = vae,
        };
    }

    /// <summary>Tensors no parameter used and no rule ignores (EMA copies, schedule buffers, position ids, OpenCLIP's unused last layer…).</summary>
    public List<string> Leftovers(Func<SafeTensors, string, bool> used, SyntheticPreset architecture)
    {
        var left = new List<string>();
        foreach (var file in _files)
            foreach (var name in file.Names)
                if (!used(file, name) && !Ignored(file, name, architecture)) left.Add(name);
        left.Sort(StringComparer.Ordinal);
        return left;
    }

    private bool Ignored(SafeTensors file, string name, SyntheticPreset architecture)
    {
        if (name.StartsWith("model_ema.", StringComparison.Ordinal) || DdpmBuffers.Contains(name) || name.EndsWith("position_ids", StringComparison.Ordinal))
            return true;
        if (_vae is not null && file == _vae.File) return !name.StartsWith(_vae.Prefix, StringComparison.Ordinal) || name.StartsWith("loss.", StringComparison.Ordinal);
        // A --vae replaces the embedded one.
        if (VaeFile is not null && name.StartsWith(VaePrefix, StringComparison.Ordinal)) return true;
        if (Kind.Family == ModelFamily.Sd2 && _textPrefix is not null && name.StartsWith(_textPrefix, StringComparison.Ordinal))
        {
            string rest = name[_textPrefix.Length..];
            if (rest is "text_projection" or "logit_scale" or "attn_mask") return true;
            // SD 2 conditions on the penultimate layer: diffusers' text encoder stops before the last block.
            var m = ResblockIndex().Match(rest);
            if (m.Success && int.Parse(m.Groups[1].Value) >= architecture.TextEncoder.Layers) return true;
        }
        return false;
    }

    private void OpenSingleFile()
    {
        var file = Track(SafeTensors.Open(Source));
        ContentFiles.Add(Source);
        var names = file.Names;
        bool Has(string prefix) => names.Any(n => n.StartsWith(prefix, StringComparison.Ordinal));
        var lora = names.FirstOrDefault(n => n.StartsWith("lora_unet_", StringComparison.Ordinal) || n.StartsWith("lora_te", StringComparison.Ordinal)
            || n.Contains(".lora_down.", StringComparison.Ordinal) || n.Contains(".lora_A.", StringComparison.Ordinal));
        if (lora is not null)
            throw new ModelFolderException($"'{Source}' is a LoRA, not a model (tensors such as '{lora}'); give it with --lora FILE[:WEIGHT] beside a base model.");
        if (Has("conditioner.embedders.1.") || names.Contains(UNetPrefix + "label_emb.0.0.weight"))
            throw Unsupported("an SDXL checkpoint (conditioner.embedders.1.*, label_emb)");
        if (Has(UNetPrefix + "joint_blocks."))
            throw Unsupported("a Stable Diffusion 3 checkpoint (joint_blocks)");
        if (Has("double_blocks.") || Has(UNetPrefix + "double_blocks."))
            throw Unsupported("a Flux checkpoint (double_blocks)");
        if (!Has(UNetPrefix))
        {
            if (names.Contains("encoder.down.0.block.0.conv1.weight") || names.Contains("encoder.down_blocks.0.resnets.0.conv1.weight"))
                throw new ModelFolderException($"'{Source}' is a VAE, not a whole model; give it with --vae FILE beside a base model.");
            if (names.Contains("conv_in.weight") && Has("down_blocks."))
                throw new ModelFolderException($"'{Source}' is a diffusers UNet on its own; point --model at the whole diffusers folder (model_index.json, unet/, vae/, text_encoder/, scheduler/).");
            throw new ModelFolderException($"'{Source}' is not a Stable Diffusion checkpoint: it has no {UNetPrefix}* UNet tensors ({FirstNames(names)}); supported: SD 1.x and SD 2.x single files and diffusers folders.");
        }
        string convIn = UNetPrefix + "input_blocks.0.0.weight";
        if (!file.Tensors.TryGetValue(convIn, out var conv) || conv.Shape.Length != 4)
            throw new ModelFolderException($"'{Source}' has no 4-D '{convIn}'; every SD UNet starts with that convolution.");
        int inChannels = (int)conv.Shape[1];
        if (Has("depth_model.") || inChannels == 5) throw Unsupported("an SD 2 depth-to-image checkpoint (5 input channels, depth_model.*)");
        if (inChannels == 8) throw Unsupported("an instruct-pix2pix checkpoint (8 input channels)");
        if (inChannels is not (4 or 9)) throw Unsupported($"a UNet with {inChannels} input channels (txt2img has 4, inpainting 9)");

        ModelFamily family;
        if (Has("cond_stage_model.transformer.text_model.")) { family = ModelFamily.Sd1; _textPrefix = "cond_stage_model.transformer."; }
        else if (Has("cond_stage_model.transformer.embeddings.")) { family = ModelFamily.Sd1; _textPrefix = "cond_stage_model.transformer."; _oldClipNames = true; }
        else if (names.Contains("cond_stage_model.model.token_embedding.weight")) { family = ModelFamily.Sd2; _textPrefix = "cond_stage_model.model."; }
        else if (names.Contains("conditioner.embedders.0.model.token_embedding.weight")) { family = ModelFamily.Sd2; _textPrefix = "conditioner.embedders.0.model."; }
        else if (names.Contains("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight")) { family = ModelFamily.Sd1; _textPrefix = "conditioner.embedders.0.transformer."; }
        else throw new ModelFolderException($"'{Source}' has no text encoder (cond_stage_model.transformer.* for SD 1.x, cond_stage_model.model.* for SD 2.x); a single-file checkpoint carries all three parts.");
        Kind = new CheckpointKind(family, inChannels, DiffusersFolder: false);
        if (Has(VaePrefix)) _vae = new VaeTensors(file, VaePrefix, Ldm: true);
    }

    private void OpenDiffusersFolder()
    {
        string index = Path.Combine(Source, "model_index.json");
        if (Directory.Exists(Path.Combine(Source, "text_encoder_2")) || Directory.Exists(Path.Combine(Source, "tokenizer_2")))
            throw Unsupported("an SDXL diffusers folder (text_encoder_2/)");
        if (Directory.Exists(Path.Combine(Source, "transformer")))
            throw Unsupported("a diffusers folder with a transformer/ (SD 3, Flux, PixArt…)");
        if (!File.Exists(index))
            throw new ModelFolderException($"'{Source}' has no model_index.json; expected a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a .safetensors file.");
        foreach (var part in new[] { "unet", "vae", "text_encoder", "scheduler" })
            if (!Directory.Exists(Path.Combine(Source, part)))
                throw new ModelFolderException($"Diffusers folder '{Source}' has no {part}/; expected unet/, vae/, text_encoder/, tokenizer/ and scheduler/.");
        ContentFiles.Add(index);
        var unetConfig = DiffusersConfigs.Read(Path.Combine(Source, "unet", "config.json"));
        var textConfig = DiffusersConfigs.Read(Path.Combine(Source, "text_encoder", "config.json"));
        var vaeConfig = DiffusersConfigs.Read(Path.Combine(Source, "vae", "config.json"));
        string schedulerPath = Path.Combine(Source, "scheduler", "scheduler_config.json");
        if (!File.Exists(schedulerPath)) throw new ModelFolderException($"'{schedulerPath}' not found; a diffusers folder keeps its scheduler config there.");
        SchedulerJson = File.ReadAllText(schedulerPath);
        ContentFiles.Add(schedulerPath);
        string tokenizer = Path.Combine(Source, "tokenizer");
        TokenizerFolder = Directory.Exists(tokenizer) && File.Exists(Path.Combine(tokenizer, "vocab.json")) ? tokenizer : null;

        var unet = DiffusersConfigs.UNet(unetConfig, Path.Combine(Source, "unet", "config.json"));
        var text = DiffusersConfigs.Text(textConfig, Path.Combine(Source, "text_encoder", "config.json"));
        var vae = DiffusersConfigs.Vae(vaeConfig);
        var family = unet.CrossAttentionDim == 1024 || text.Hidden == 1024 ? ModelFamily.Sd2 : ModelFamily.Sd1;
        Kind = new CheckpointKind(family, unet.InChannels, DiffusersFolder: true);
        if (unet.InChannels is not (4 or 9)) throw Unsupported($"a UNet with {unet.InChannels} input channels (txt2img has 4, inpainting 9)");
        Architecture = new SyntheticPreset(Path.GetFileName(Source), "diffusers folder", text, unet, vae, SchedulerJson, family == ModelFamily.Sd2 ? "!" : null);

        _unetFiles = WeightFiles("unet", "diffusion_pytorch_model");
        _textFiles = WeightFiles("text_encoder", "model");
        var vaeFiles = WeightFiles("vae", "diffusion_pytorch_model");
        _vae = new VaeTensors(vaeFiles[0], "", Ldm: false, vaeFiles);
    }

    // model.safetensors, else model.fp16.safetensors, else a sharded model.safetensors.index.json.
    private List<SafeTensors> WeightFiles(string component, string stem)
    {
        string dir = Path.Combine(Source, component);
        foreach (var name in new[] { $"{stem}.safetensors", $"{stem}.fp16.safetensors" })
        {
            string path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                ContentFiles.Add(path);
                return [Track(SafeTensors.Open(path))];
            }
        }
        string shardIndex = Path.Combine(dir, $"{stem}.safetensors.index.json");
        if (File.Exists(shardIndex))
        {
            ContentFiles.Add(shardIndex);
            var files = new List<SafeTensors>();
            foreach (var shard in DiffusersConfigs.Shards(shardIndex))
            {
                string path = Path.Combine(dir, shard);
                ContentFiles.Add(path);
                files.Add(Track(SafeTensors.Open(path)));
            }
            return files;
        }
        if (Directory.EnumerateFiles(dir, "*.bin").Any() || Directory.EnumerateFiles(dir, "*.ckpt").Any())
            throw new ModelFolderException($"'{dir}' holds only PyTorch pickle weights (.bin/.ckpt), which cannot be read safely; convert them to .safetensors first.");
        throw new ModelFolderException($"'{dir}' has no {stem}.safetensors (or {stem}.fp16.safetensors, or a sharded index).");
    }

    private SafeTensors Track(SafeTensors file)
    {
        _files.Add(file);
        return file;
    }

    private ModelFolderException Unsupported(string what) =>
        new($"'{Source}' is {what}, which AsyncDiffusion does not support; supported: SD 1.x and SD 2.x (including 768 v-prediction and inpainting) single files and diffusers folders.");

    internal static string FirstNames(IEnumerable<string> names)
    {
        var list = names.Order(StringComparer.Ordinal).ToList();
        return list.Count == 0 ? "it holds no tensors" : $"{list.Count} tensors such as {string.Join(", ", list.Take(3).Select(n => $"'{n}'"))}";
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }

    [GeneratedRegex(@"^transformer\.resblocks\.(\d+)\.")]
    private static partial Regex ResblockIndex();

    /// <summary>A VAE's tensors: LDM names under a prefix, or diffusers names (with their pre-0.17 attention names).</summary>
    private sealed record VaeTensors(SafeTensors File, string Prefix, bool Ldm, IReadOnlyList<SafeTensors>? AllFiles = null)
    {
        public ComponentTensors Map(int levels) => new("vae", AllFiles ?? [File], n => Keys(n, levels));

        private IEnumerable<LdmTensor> Keys(string name, int levels)
        {
            if (Ldm)
            {
                if (LdmNames.Vae(name, levels) is { } k) yield return new LdmTensor(Prefix + k);
                yield break;
            }
            yield return new LdmTensor(Prefix + name);
            // diffusers < 0.17 named the mid-block attention query/key/value/proj_attn.
            string legacy = name.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn.");
            if (legacy != name) yield return new LdmTensor(Prefix + legacy);
        }
    }
}
