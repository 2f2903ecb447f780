using AsyncDiffusion.Models;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// The denoising core: one UNet evaluation for a set of images at their current steps. It lays
/// out every image's rows (classifier-free guidance halves included; for an inpainting UNet each
/// row carries the latents, the mask and the masked image's latents), the timesteps and the text
/// states, runs the UNet and hands each image its slice of the output. Both the synchronous
/// pipeline (one image) and the engine's streams (images of several requests) step images only
/// through here, so a new UNet input is added in this one place and in
/// <see cref="DenoisingImage.WriteInputs"/>.
/// </summary>
public static class UNetBatch
{
    /// <summary>
    /// Whether two images can share one UNet call: the same latent shape and UNet input contract
    /// (inpainting rows or not), the same layout of guidance rows, and the same timestep when the
    /// export takes one timestep per call, and the same padding (seamless tiling runs the UNet's
    /// circular variant). Masked denoising with a text-to-image UNet changes no input, so
    /// inpainting and plain steps share calls.
    /// </summary>
    public static bool Compatible(DenoisingImage a, DenoisingImage b, UNet unet) =>
        a.Channels == b.Channels && a.InputChannels == b.InputChannels && a.LatentHeight == b.LatentHeight && a.LatentWidth == b.LatentWidth
        && a.Plan.Request.CfgAsBatch == b.Plan.Request.CfgAsBatch && a.Plan.Request.Tiling == b.Plan.Request.Tiling
        && (unet.AcceptsPerItemTimesteps || a.Timestep == b.Timestep);

    /// <summary>
    /// Runs the UNet for <paramref name="images"/> (compatible with each other) and returns the
    /// output of all their rows, in order; <see cref="OutputOf"/> slices out one image's part.
    /// Images that asked for guidance as two calls (<see cref="GenerationRequest.CfgAsBatch"/>
    /// off) are evaluated one row per call: less memory, the same arithmetic per row.
    /// </summary>
    public static float[] Evaluate(ModelFolder model, IReadOnlyList<DenoisingImage> images, CancellationToken cancellation)
    {
        if (images.Count == 0) throw new ArgumentException("A UNet batch needs at least one image.", nameof(images));
        var first = images[0];
        int input = first.InputSize, latent = first.LatentSize, tokens = model.Tokenizer.MaxLength, hidden = model.TextEncoder.HiddenSize;
        int rows = images.Sum(i => i.Rows), contextRow = tokens * hidden;
        var samples = new float[rows * input];
        var context = new float[rows * contextRow];
        var timesteps = new double[rows];
        int row = 0;
        foreach (var image in images)
        {
            image.WriteInputs(samples.AsSpan(row * input, image.Rows * input), context.AsSpan(row * contextRow, image.Rows * contextRow));
            timesteps.AsSpan(row, image.Rows).Fill(image.Timestep);
            row += image.Rows;
        }

        var unet = first.Plan.Request.Tiling ? model.UNet.Circular : model.UNet;
        int rowsPerCall = first.Plan.Request.CfgAsBatch ? rows : 1;
        if (rowsPerCall == rows)
            return unet.Predict(samples, [rows, first.InputChannels, first.LatentHeight, first.LatentWidth], timesteps, context, [rows, tokens, hidden], cancellation);

        var output = new float[rows * latent];
        for (int r = 0; r < rows; r++)
        {
            var part = unet.Predict(samples.AsSpan(r * input, input), [1, first.InputChannels, first.LatentHeight, first.LatentWidth], timesteps.AsSpan(r, 1),
                context.AsSpan(r * contextRow, contextRow), [1, tokens, hidden], cancellation);
            part.CopyTo(output.AsSpan(r * latent));
        }
        return output;
    }

    /// <summary>The rows of <paramref name="output"/> that belong to image <paramref name="position"/> of the batch.</summary>
    public static ReadOnlySpan<float> OutputOf(float[] output, IReadOnlyList<DenoisingImage> images, int position)
    {
        int row = 0;
        for (int i = 0; i < position; i++) row += images[i].Rows;
        var image = images[position];
        return output.AsSpan(row * image.LatentSize, image.Rows * image.LatentSize);
    }
}
