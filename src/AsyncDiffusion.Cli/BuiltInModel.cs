using System.Security.Cryptography;
using AsyncDiffusion.Models.Synthetic;

namespace AsyncDiffusion.Cli;

/// <summary>
/// The model used when no --model is given: the trained "tiny-shapes" model, built from the
/// weights shipped in the library into the user cache (<see cref="UserCache"/>) on first use and
/// reused. The folder name carries a hash of the weights, so new weights get a new folder.
/// </summary>
public static class BuiltInModel
{
    public const string Notice =
        "No --model given: using the built-in 'tiny-shapes' model (64x64), trained on simple scenes of coloured shapes; it draws prompts like " +
        "'a red circle on a blue background' or 'a large yellow star at the top left on a purple background'. " +
        "For other subjects, point --model at a diffusers ONNX folder, e.g. an SD 1.5 or SD-Turbo export made with " +
        "'optimum-cli export onnx --model <hub id> <folder>'.";

    private static readonly Lazy<string> WeightsHash = new(() =>
        Convert.ToHexStringLower(SHA256.HashData(TinyShapesModel.BuiltInWeightsBytes))[..12]);

    public static string Folder => UserCache.Folder(Path.Combine("models", $"{TinyShapesModel.Name}-{WeightsHash.Value}"));

    /// <summary>The folder, written first if it is not there yet (the writer only moves complete folders into place).</summary>
    public static string Ensure()
    {
        string folder = Folder;
        if (!File.Exists(Path.Combine(folder, "model_index.json")))
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            try
            {
                TinyShapesModel.Write(folder);
            }
            catch (Exception e) when (e is IOException or AsyncDiffusionException && File.Exists(Path.Combine(folder, "model_index.json")))
            {
                // Another process (a second node starting at the same time) put the same complete folder in place first.
            }
        }
        return folder;
    }
}
