using AsyncDiffusion.Imaging;
using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;
using AsyncDiffusion.Tokenization;
using BenchmarkDotNet.Attributes;

namespace AsyncDiffusion.Benchmarks;

/// <summary>
/// The managed code on the request path, at SD 1.5 512 px sizes, so its cost is known next to a
/// UNet step (seconds on a CPU): tokenizing, drawing noise, one scheduler step, latents → RGB,
/// PNG encoding.
/// </summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private const int Latent = 4 * 64 * 64;
    private readonly float[] _latents = new float[Latent];
    private readonly float[] _modelOutput = new float[Latent];
    private readonly float[] _decoded = new float[3 * 512 * 512];
    private Scheduler _scheduler = null!;
    private RgbImage _image = null!;
    private int _step;

    [GlobalSetup]
    public void Setup()
    {
        new TorchCpuGenerator(1).NextGaussian(_latents);
        new TorchCpuGenerator(2).NextGaussian(_modelOutput);
        for (int i = 0; i < _decoded.Length; i++) _decoded[i] = MathF.Sin(i * 0.001f);
        _image = LatentImageConversion.ToImage(_decoded, 0, 512, 512);
        _scheduler = SchedulerRegistry.Create("DPM++ 2M Karras", SchedulerConfig.Parse("""{"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}""", "sd15"));
        _scheduler.SetTimesteps(1000);
        _ = ClipTokenizer.Default.Encode("warm up");
    }

    [Benchmark]
    public int TokenizeNewPrompt() =>
        new ClipTokenizer(ClipVocabulary.OpenAiDefault).Encode("masterpiece, best quality, a photo of an astronaut riding a horse on mars, 4k, highly detailed").Ids.Length;

    [Benchmark]
    public int TokenizeCachedPrompt() =>
        ClipTokenizer.Default.Encode("masterpiece, best quality, a photo of an astronaut riding a horse on mars, 4k, highly detailed").Ids.Length;

    [Benchmark]
    public void TorchNoiseFor512() => new TorchCpuGenerator(42).NextGaussian(_latents);

    [Benchmark]
    public void SchedulerStep()
    {
        if (_step >= _scheduler.Timesteps.Count - 1)
        {
            _scheduler.SetTimesteps(1000);
            _step = 0;
        }
        _scheduler.Step(_modelOutput, _scheduler.Timesteps[_step++], _latents);
    }

    [Benchmark]
    public RgbImage LatentsToImage512() => LatentImageConversion.ToImage(_decoded, 0, 512, 512);

    [Benchmark]
    public int PngEncode512() => ImageCodec.Encode(_image, ImageFormat.Png, "a photo\nSteps: 20").Length;
}
