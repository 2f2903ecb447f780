namespace AsyncDiffusion.Schedulers;

/// <summary>DPM2's extra per-call sigmas, interleaved as diffusers stores them (NaN where no call reads one).</summary>
public interface IInterpolatedSigmas
{
    /// <summary>The sigma between this one and the next that the first call steps to.</summary>
    IReadOnlyList<float> SigmasInterpol { get; }

    /// <summary>The ancestral noise level added on second calls (DPM2 a; empty otherwise).</summary>
    IReadOnlyList<float> SigmasUp { get; }

    /// <summary>The sigma the ancestral step lands on before the noise is added (DPM2 a; empty otherwise).</summary>
    IReadOnlyList<float> SigmasDown { get; }
}
