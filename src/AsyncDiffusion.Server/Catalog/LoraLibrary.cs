using AsyncDiffusion.Models;
using AsyncDiffusion.Models.Checkpoints;

namespace AsyncDiffusion.Server.Catalog;

/// <summary>One LoRA clients can name: its name (the file name without extension), file name and training metadata.</summary>
public sealed record LibraryLora(string Name, string FileName, string Path, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// The LoRA files of <c>--lora-dir</c> (and its subfolders), listed by name as A1111 does; prompts
/// refer to them as <c>&lt;lora:name:weight&gt;</c>. Clients see names, never server paths.
/// </summary>
public sealed class LoraLibrary(string? folder)
{
    private (IReadOnlyList<LibraryLora> Loras, IReadOnlyList<string> Problems) _scan = Scan(folder);

    public bool Enabled => folder is not null;
    public IReadOnlyList<LibraryLora> Loras => _scan.Loras;

    /// <summary>Files in the folder that could not be offered, with why (for the log).</summary>
    public IReadOnlyList<string> Problems => _scan.Problems;

    public void Refresh() => _scan = Scan(folder);

    /// <summary>The LoRAs a prompt asks for, as files and weights; an unknown name is bad input.</summary>
    public IReadOnlyList<LoraReference> Resolve(IReadOnlyList<LoraUse> uses)
    {
        if (uses.Count > 0 && !Enabled)
            throw new AsyncDiffusionException($"The prompt asks for LoRA '{uses[0].Name}' but this server has no LoRAs (start it with --lora-dir).");
        return uses.Select(u =>
        {
            var loras = Loras;
            var lora = loras.FirstOrDefault(l => string.Equals(l.Name, u.Name, StringComparison.OrdinalIgnoreCase))
                ?? throw new AsyncDiffusionException($"LoRA '{u.Name}' is not available; available: {(loras.Count == 0 ? "none" : string.Join(", ", loras.Select(l => l.Name)))}.");
            return new LoraReference(lora.Path, u.Weight);
        }).ToList();
    }

    private static (IReadOnlyList<LibraryLora>, IReadOnlyList<string>) Scan(string? folder)
    {
        var loras = new List<LibraryLora>();
        var problems = new List<string>();
        if (folder is null) return (loras, problems);
        foreach (var path in Directory.EnumerateFiles(folder, "*.safetensors", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            IReadOnlyDictionary<string, string> metadata;
            try
            {
                using var file = SafeTensors.Open(path);
                metadata = file.Metadata;
            }
            catch (ModelFolderException e)
            {
                problems.Add(e.Message);
                continue;
            }
            loras.Add(new LibraryLora(System.IO.Path.GetFileNameWithoutExtension(path), System.IO.Path.GetFileName(path), path, metadata));
        }
        return (loras, problems);
    }
}
