using AsyncDiffusion.Cluster.Contracts;

namespace AsyncDiffusion.Cluster.Grains;

/// <summary>The durable part of a job (what survives any node's loss).</summary>
[GenerateSerializer]
public sealed class JobRecord
{
    [Id(0)] public ClusterRequest? Request { get; set; }
    [Id(1)] public string Fingerprint { get; set; } = "";
    [Id(2)] public ClusterJobStatus Status { get; set; }
    /// <summary>The newest lease epoch seen: the only one whose result is accepted.</summary>
    [Id(3)] public long Fence { get; set; }
    [Id(4)] public string? Node { get; set; }
    [Id(5)] public DateTime SubmittedAt { get; set; }
    [Id(6)] public DateTime? StartedAt { get; set; }
    [Id(7)] public PlannedShape? Shape { get; set; }
    [Id(8)] public ClusterJobResult? Result { get; set; }
    [Id(9)] public string? Error { get; set; }
    [Id(10)] public int Attempts { get; set; }
    [Id(11)] public int StepsTotal { get; set; }

    public bool IsFinished => Status is ClusterJobStatus.Succeeded or ClusterJobStatus.Failed or ClusterJobStatus.Cancelled;
}
