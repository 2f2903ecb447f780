namespace AsyncDiffusion.Randomness;

/// <summary>
/// A seeded source of standard normal noise, reproducing one generator that users already know,
/// so the same seed gives the same initial latents (and ancestral step noise) as that tool.
/// Stateful: successive calls continue the sequence, like repeated <c>randn</c> calls.
/// </summary>
public interface INoiseGenerator
{
    NoiseGeneratorKind Kind { get; }

    /// <summary>Fills <paramref name="destination"/> with N(0, 1) float32 values, in flat C order.</summary>
    void NextGaussian(Span<float> destination);
}
