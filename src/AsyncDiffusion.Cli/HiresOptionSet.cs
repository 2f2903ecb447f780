using System.CommandLine;
using AsyncDiffusion.Cli.Commands;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Cli;

/// <summary>
/// <c>generate</c>'s hires-fix options: <c>--hires</c> turns it on, and so does any
/// <c>--hires-*</c> option; unset ones take AUTOMATIC1111's defaults (scale 2, Latent, the
/// request's steps and scheduler, denoising strength 0.75).
/// </summary>
public sealed class HiresOptionSet
{
    private readonly Option<bool> _enable = new("--hires") { Description = "Hires fix (txt2img): upscale the first pass and denoise it again at the larger size, as A1111 does." };
    private readonly Option<double?> _scale = new("--hires-scale") { Description = "Hires fix: factor on width and height (default 2)." };
    private readonly Option<string?> _resize = new("--hires-resize") { Description = "Hires fix: WIDTHxHEIGHT target instead of a scale (0 on one side keeps the aspect ratio; otherwise the overhang is cropped)." };
    private readonly Option<string?> _upscaler = new("--hires-upscaler")
    {
        Description = $"Hires fix upscaler: {string.Join(", ", HiresUpscaler.All.Select(u => u.Name))} (default Latent; the image upscalers need a VAE encoder).",
    };
    private readonly Option<int?> _steps = new("--hires-steps") { Description = "Hires fix: steps of the second pass (default: --steps)." };
    private readonly Option<double?> _strength = new("--hires-strength") { Description = "Hires fix: denoising strength of the second pass, in (0, 1] (default 0.75)." };
    private readonly Option<string?> _scheduler = new("--hires-scheduler") { Description = "Hires fix: scheduler of the second pass (default: --scheduler)." };
    private readonly Option<string?> _prompt = new("--hires-prompt") { Description = "Hires fix: prompt of the second pass (default: the prompt)." };
    private readonly Option<string?> _negative = new("--hires-negative") { Description = "Hires fix: negative prompt of the second pass (default: --negative)." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _enable, _scale, _resize, _upscaler, _steps, _strength, _scheduler, _prompt, _negative })
            command.Options.Add(option);
    }

    /// <summary>The hires fix the command line asks for, or null when no hires option is given.</summary>
    public HiresOptions? Read(ParseResult parse)
    {
        var resize = GenerateCommand.ParseSize(parse.GetValue(_resize), null, null, "--hires-resize");
        bool any = parse.GetValue(_enable) || parse.GetValue(_scale) is not null || resize.Width is not null || parse.GetValue(_upscaler) is not null
            || parse.GetValue(_steps) is not null || parse.GetValue(_strength) is not null || parse.GetValue(_scheduler) is not null
            || parse.GetValue(_prompt) is not null || parse.GetValue(_negative) is not null;
        if (!any) return null;
        return new HiresOptions
        {
            Scale = parse.GetValue(_scale) ?? 2.0,
            ResizeWidth = resize.Width ?? 0,
            ResizeHeight = resize.Height ?? 0,
            Upscaler = parse.GetValue(_upscaler),
            Steps = parse.GetValue(_steps) ?? 0,
            DenoisingStrength = parse.GetValue(_strength) ?? 0.75,
            Scheduler = parse.GetValue(_scheduler),
            Prompt = parse.GetValue(_prompt),
            NegativePrompt = parse.GetValue(_negative),
        };
    }
}
