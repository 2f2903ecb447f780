namespace AsyncDiffusion.Models.Checkpoints;

/// <summary>The Stable Diffusion generations a checkpoint can belong to.</summary>
public enum ModelFamily
{
    /// <summary>SD 1.x: CLIP ViT-L/14 text encoder (768 wide), 1×1-conv projections in the UNet's transformers.</summary>
    Sd1,
    /// <summary>SD 2.x: OpenCLIP ViT-H/14 text encoder (1024 wide, penultimate layer), linear projections.</summary>
    Sd2,
}

/// <summary>What a checkpoint is, read from its tensor names and shapes (or a diffusers folder's configs).</summary>
public sealed record CheckpointKind(ModelFamily Family, int InChannels, bool DiffusersFolder)
{
    /// <summary>An inpainting UNet: noisy latents, mask and masked-image latents (4 + 1 + 4 channels).</summary>
    public bool Inpainting => InChannels == 9;

    public string Description =>
        $"{(Family == ModelFamily.Sd1 ? "SD 1.x (CLIP ViT-L text encoder)" : "SD 2.x (OpenCLIP ViT-H text encoder)")}" +
        $"{(Inpainting ? ", inpainting UNet (9 input channels)" : "")}, {(DiffusersFolder ? "diffusers folder" : "single file")}";
}
