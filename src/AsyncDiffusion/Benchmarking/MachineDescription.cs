using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace AsyncDiffusion.Benchmarking;

/// <summary>What machine a measurement ran on: CPU, cores, vector extensions, OS, ONNX Runtime version.</summary>
public sealed record MachineDescription(string Cpu, int Cores, string[] Isa, string Os, string OnnxRuntime, string Dotnet)
{
    public static MachineDescription Current()
    {
        string cpu = RuntimeInformation.ProcessArchitecture.ToString();
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException) { }
        var isa = new List<string>();
        if (Avx2.IsSupported) isa.Add("AVX2");
        if (Fma.IsSupported) isa.Add("FMA");
        if (Avx512F.IsSupported) isa.Add("AVX-512F");
        if (Avx512BW.IsSupported) isa.Add("AVX-512BW");
        if (AvxVnni.IsSupported) isa.Add("AVX-VNNI");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) isa.Add("NEON");
        string ort;
        try { ort = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString(); }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException) { ort = "unavailable"; }
        return new MachineDescription(cpu, Environment.ProcessorCount, isa.ToArray(), RuntimeInformation.OSDescription, ort, RuntimeInformation.FrameworkDescription);
    }
}
