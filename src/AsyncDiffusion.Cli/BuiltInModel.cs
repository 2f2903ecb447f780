using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Cli;

/// <summary>
/// The model used when no --model is given: the synthetic "tiny" preset, written once into the
/// user's cache folder (XDG cache on Linux) and reused.
/// </summary>
public static class BuiltInModel
{
    public const string Notice =
        "No --model given: using the built-in synthetic 'tiny' model (a real Stable Diffusion architecture with random weights), so the images are abstract. " +
        "For real images, point --model at a diffusers ONNX folder, e.g. an SD 1.5 or SD-Turbo export made with " +
        "'optimum-cli export onnx --model <hub id> <folder>'.";

    public static string Folder => UserCache.Folder(Path.Combine("models", "tiny-synthetic-v1"));

    /// <summary>The folder, written first if it is not there yet (the writer only moves complete folders into place).</summary>
    public static string Ensure()
    {
        string folder = Folder;
        if (!File.Exists(Path.Combine(folder, "model_index.json")))
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            try
            {
                SyntheticModelWriter.Write(folder, SyntheticPreset.Tiny);
            }
            catch (IOException) when (File.Exists(Path.Combine(folder, "model_index.json")))
            {
                // Another process (a second node starting at the same time) put the same complete folder in place first.
            }
        }
        return folder;
    }
}
