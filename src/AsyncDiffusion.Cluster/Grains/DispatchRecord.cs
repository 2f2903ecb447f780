namespace AsyncDiffusion.Cluster.Grains;

/// <summary>The dispatcher's durable state: the queue and the leases.</summary>
[GenerateSerializer]
public sealed class DispatchRecord
{
    [Id(0)] public List<QueuedJob> Pending { get; set; } = new();
    [Id(1)] public Dictionary<string, LeasedJob> Leases { get; set; } = new();
    /// <summary>Epochs only grow, so every lease (and every take-back) is newer than all before it.</summary>
    [Id(2)] public long LastEpoch { get; set; }
    [Id(3)] public long Reclaimed { get; set; }
}

[GenerateSerializer]
public sealed record QueuedJob([property: Id(0)] string JobId, [property: Id(1)] string Model);

[GenerateSerializer]
public sealed record LeasedJob(
    [property: Id(0)] string JobId,
    [property: Id(1)] string Model,
    [property: Id(2)] string Node,
    [property: Id(3)] string Silo,
    [property: Id(4)] long Epoch,
    [property: Id(5)] DateTime RenewedAt);
