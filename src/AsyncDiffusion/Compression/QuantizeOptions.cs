using AsyncDiffusion.Onnx;
using AsyncDiffusion.Onnx.Graphs.Quantization;

namespace AsyncDiffusion.Compression;

/// <summary>How <see cref="ModelQuantizer"/> quantizes a model folder.</summary>
public sealed record QuantizeOptions
{
    public static IReadOnlyList<string> AllComponents { get; } = ["unet", "text_encoder", "vae_decoder", "vae_encoder"];

    /// <summary>Prompts the built-in calibration runs use: varied subjects, styles and lengths.</summary>
    public static IReadOnlyList<string> DefaultPrompts { get; } =
    [
        "a photo of an astronaut riding a horse on mars",
        "a watercolor painting of a lighthouse at dawn, soft light, detailed",
        "portrait of an old fisherman, dramatic lighting, 85mm",
        "a cozy cabin in a snowy forest at night, warm windows, digital art",
    ];

    /// <summary>Components to quantize; null means every one the folder has.</summary>
    public IReadOnlyList<string>? Components { get; init; }

    public IReadOnlyList<string> CalibrationPrompts { get; init; } = DefaultPrompts;

    /// <summary>Denoising steps of each calibration trajectory (timesteps spread over the whole schedule).</summary>
    public int CalibrationSteps { get; init; } = 8;

    /// <summary>Calibration (and report) image size; null means the model's native size.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>Glob patterns (<c>*</c>, <c>?</c>) over node, weight and output names of layers to keep in float.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];

    public ClippingMethod Clipping { get; init; } = ClippingMethod.MinError;

    /// <summary>Measure the quality report (int8 against fp32) after writing.</summary>
    public bool MeasureQuality { get; init; } = true;

    /// <summary>Sessions for calibration and the report.</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;
}

/// <summary>Where a quantization run is: a stage and how far through it.</summary>
public sealed record QuantizeProgress(string Stage, int Done, int Total);

/// <summary>What <see cref="ModelQuantizer"/> wrote.</summary>
public sealed record QuantizeResult(string Folder, IReadOnlyDictionary<string, QuantizationRecord> Components, QualityReport? Quality,
    long SourceBytes, long Bytes, TimeSpan Elapsed);
