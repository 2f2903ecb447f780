namespace AsyncDiffusion.Randomness;

/// <summary>Which generator turns a seed into noise.</summary>
public enum NoiseGeneratorKind
{
    /// <summary><c>torch.manual_seed(s); torch.randn(shape)</c> on the CPU (diffusers with a CPU generator, AUTOMATIC1111 "CPU", ComfyUI).</summary>
    Torch,

    /// <summary><c>np.random.RandomState(s).randn(*shape)</c> (diffusers' ONNX pipelines).</summary>
    Numpy,

    /// <summary>torch's CUDA Philox generator as AUTOMATIC1111 emulates it (its default "GPU"/"NV" source).</summary>
    Philox,
}

public static class NoiseGenerators
{
    public static INoiseGenerator Create(NoiseGeneratorKind kind, ulong seed) => kind switch
    {
        NoiseGeneratorKind.Torch => new TorchCpuGenerator(seed),
        NoiseGeneratorKind.Numpy => new NumpyRandomState(seed <= uint.MaxValue
            ? (uint)seed
            : throw new AsyncDiffusionException($"Seed {seed} is too large for the numpy generator; numpy's RandomState accepts 0 to {uint.MaxValue}.")),
        NoiseGeneratorKind.Philox => new PhiloxGenerator(seed),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Names users type: torch/cpu, numpy/np, philox/gpu/nv/cuda.</summary>
    public static NoiseGeneratorKind Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "torch" or "cpu" or "torch_cpu" => NoiseGeneratorKind.Torch,
        "numpy" or "np" or "numpy_legacy" => NoiseGeneratorKind.Numpy,
        "philox" or "gpu" or "nv" or "cuda" or "philox_cuda" => NoiseGeneratorKind.Philox,
        _ => throw new AsyncDiffusionException($"Unknown noise generator '{name}'; expected one of: torch (cpu), numpy, philox (gpu, nv)."),
    };
}
