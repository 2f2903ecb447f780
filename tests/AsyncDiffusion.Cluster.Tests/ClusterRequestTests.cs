using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Cluster.Tests;

public sealed class ClusterRequestTests
{
    [Fact]
    public void Clip_skip_and_tiling_travel_between_nodes()
    {
        var request = new GenerationRequest { Prompt = "tiles", Steps = 3, ClipSkip = 2, Tiling = true };
        var back = ClusterRequest.From(request, "tiny").ToGenerationRequest();
        Assert.Equal(2, back.ClipSkip);
        Assert.True(back.Tiling);
        Assert.Equal(1, ClusterRequest.From(new GenerationRequest { Prompt = "x" }, "tiny").ToGenerationRequest().ClipSkip);
    }
}
