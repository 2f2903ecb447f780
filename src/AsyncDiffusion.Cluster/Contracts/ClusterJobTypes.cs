namespace AsyncDiffusion.Cluster.Contracts;

[GenerateSerializer]
public enum ClusterJobStatus { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>A finished job's output, committed once by the node that ran it.</summary>
[GenerateSerializer, Immutable]
public sealed record ClusterJobResult(
    [property: Id(0)] byte[][] Files,
    [property: Id(1)] long[] Seeds,
    [property: Id(2)] string[] Infotexts,
    [property: Id(3)] int Width,
    [property: Id(4)] int Height,
    [property: Id(5)] string Scheduler,
    [property: Id(6)] double RunMs);

/// <summary>What the cluster knows of one job, as any node shows it.</summary>
[GenerateSerializer, Immutable]
public sealed record ClusterJobSnapshot
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public ClusterJobStatus Status { get; init; }
    [Id(2)] public required ClusterRequest Request { get; init; }
    [Id(3)] public int StepsDone { get; init; }
    [Id(4)] public int StepsTotal { get; init; }
    [Id(5)] public DateTime SubmittedAt { get; init; }
    [Id(6)] public DateTime? StartedAt { get; init; }
    [Id(7)] public string? Node { get; init; }
    [Id(8)] public long[] Seeds { get; init; } = [];
    [Id(9)] public int? Width { get; init; }
    [Id(10)] public int? Height { get; init; }
    [Id(11)] public string? Scheduler { get; init; }
    [Id(12)] public string[]? Infotexts { get; init; }
    [Id(13)] public int ImageCount { get; init; }
    [Id(14)] public string? Error { get; init; }
    [Id(15)] public int Attempts { get; init; }

    public bool IsFinished => Status is ClusterJobStatus.Succeeded or ClusterJobStatus.Failed or ClusterJobStatus.Cancelled;
}

/// <summary>Where the plan made at submission put the job (size, seeds, scheduler), when the accepting node has the model.</summary>
[GenerateSerializer, Immutable]
public sealed record PlannedShape([property: Id(0)] long[] Seeds, [property: Id(1)] int Width, [property: Id(2)] int Height, [property: Id(3)] string Scheduler, [property: Id(4)] int StepsTotal,
    [property: Id(5)] long Subseed = -1);

[GenerateSerializer]
public enum SubmitOutcome { Accepted, Existing, Conflict, NoModel, Full }

[GenerateSerializer, Immutable]
public sealed record SubmitReply([property: Id(0)] SubmitOutcome Outcome, [property: Id(1)] ClusterJobSnapshot? Job, [property: Id(2)] double RetryAfterSeconds = 0, [property: Id(3)] string? Detail = null, [property: Id(4)] int Capacity = 0);

[GenerateSerializer]
public enum ClusterEventKind { Queued, Started, Step, Image, Requeued, Done }

/// <summary>One event of a job's life, numbered within one activation of its record (<see cref="ClusterJobEvent.Incarnation"/>) so a watcher on any node can resume after the last one it saw.</summary>
[GenerateSerializer, Immutable]
public sealed record ClusterJobEvent(
    [property: Id(0)] int Index,
    [property: Id(1)] ClusterEventKind Kind,
    [property: Id(2)] int StepsDone = 0,
    [property: Id(3)] int StepsTotal = 0,
    [property: Id(4)] int Image = 0,
    [property: Id(5)] long Seed = 0,
    [property: Id(6)] ClusterJobStatus Status = ClusterJobStatus.Queued,
    [property: Id(7)] string? Error = null,
    [property: Id(8)] string? Node = null,
    [property: Id(9)] string Incarnation = "");

/// <summary>A job leased to a node: run it under this epoch; results under an older epoch are refused.</summary>
[GenerateSerializer, Immutable]
public sealed record JobLease([property: Id(0)] string JobId, [property: Id(1)] long Epoch);

/// <summary>What a node tells the dispatcher each time it asks for work.</summary>
[GenerateSerializer, Immutable]
public sealed record NodeReport
{
    [Id(0)] public required string Name { get; init; }
    [Id(1)] public required string Silo { get; init; }
    [Id(2)] public string[] Models { get; init; } = [];
    /// <summary>Jobs it runs at once (what it leases at most).</summary>
    [Id(3)] public int Slots { get; init; }
    /// <summary>Its admission limit: what it adds to the cluster's queue capacity.</summary>
    [Id(4)] public int MaxJobs { get; init; }
    [Id(5)] public int Running { get; init; }
    [Id(6)] public long Succeeded { get; init; }
    [Id(7)] public long Failed { get; init; }
    [Id(8)] public long Images { get; init; }
    [Id(9)] public string? Url { get; init; }
    [Id(10)] public bool Healthy { get; init; } = true;
    [Id(11)] public double AverageJobSeconds { get; init; } = 1;
}

[GenerateSerializer, Immutable]
public sealed record PullReply([property: Id(0)] JobLease[] Leases, [property: Id(1)] bool NameRefused, [property: Id(2)] string? Detail = null);

/// <summary>One node as the cluster sees it.</summary>
[GenerateSerializer, Immutable]
public sealed record NodeView(
    [property: Id(0)] NodeReport Report,
    [property: Id(1)] string Status,
    [property: Id(2)] int Leased,
    [property: Id(3)] DateTime LastSeen);

/// <summary>The cluster at a glance: nodes, the shared queue, and the jobs in it (leased first).</summary>
[GenerateSerializer, Immutable]
public sealed record ClusterView(
    [property: Id(0)] NodeView[] Nodes,
    [property: Id(1)] int Pending,
    [property: Id(2)] int Leased,
    [property: Id(3)] int Capacity,
    [property: Id(4)] string[] ActiveJobs,
    [property: Id(5)] long Reclaimed);
