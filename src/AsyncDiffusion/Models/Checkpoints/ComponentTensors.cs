namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>Where one parameter's values are: a file, a tensor in it and, for packed q/k/v, which row block.</summary>
internal sealed record TensorLocation(SafeTensors File, SafeTensorInfo Info, int Part, int Parts);

/// <summary>
/// The tensors of one model component (text encoder, UNet, VAE) in one or more files, and the
/// rule that names them: a graph parameter's diffusers name → the candidate keys in the files,
/// tried in order (LDM names with the file's prefix, legacy diffusers names, …).
/// </summary>
internal sealed class ComponentTensors(string label, IReadOnlyList<SafeTensors> files, Func<string, IEnumerable<LdmTensor>> keys)
{
    public string Label => label;
    public IReadOnlyList<SafeTensors> Files => files;

    /// <summary>The first candidate found, or null; <paramref name="expected"/> names the first candidate for messages.</summary>
    public TensorLocation? Locate(string name, out string expected)
    {
        expected = "";
        foreach (var key in keys(name))
        {
            if (expected.Length == 0) expected = key.Key;
            foreach (var file in files)
                if (file.Tensors.TryGetValue(key.Key, out var info)) return new TensorLocation(file, info, key.Part, key.Parts);
        }
        return null;
    }
}
