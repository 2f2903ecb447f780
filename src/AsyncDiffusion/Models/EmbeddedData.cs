using System.Reflection;

namespace AsyncDiffusion.Models;

/// <summary>Files from Models/Data embedded in the library (TAESD's weights, the built-in model's weights).</summary>
internal static class EmbeddedData
{
    public static byte[] Bytes(string file)
    {
        string name = $"AsyncDiffusion.Models.{file}";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Resource {name} is missing from the AsyncDiffusion assembly.");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    public static SafeTensors SafeTensors(string file) => Models.SafeTensors.Parse(Bytes(file), $"built-in {file}");
}
