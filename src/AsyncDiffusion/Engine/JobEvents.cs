using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Engine;

public enum JobState { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>What happens to a job, in order: queued, started, steps (and previews), images, then one of finished / failed / cancelled.</summary>
public abstract record JobEvent(string JobId);
public sealed record JobQueued(string JobId, int Position) : JobEvent(JobId);
public sealed record JobStarted(string JobId) : JobEvent(JobId);
public sealed record JobStep(string JobId, int ImageIndex, int Step, int Steps, double Timestep) : JobEvent(JobId);
public sealed record JobPreview(string JobId, int ImageIndex, int Step, byte[] Png) : JobEvent(JobId);
public sealed record JobImageReady(string JobId, int ImageIndex, long Seed) : JobEvent(JobId);
public sealed record JobFinished(string JobId, JobResult Result) : JobEvent(JobId);
public sealed record JobFailed(string JobId, string Error) : JobEvent(JobId);
public sealed record JobCancelled(string JobId) : JobEvent(JobId);

/// <summary>A finished job: the images (and their encoded files), timings and the plan that made them.</summary>
public sealed record JobResult(GenerationResult Generation, IReadOnlyList<byte[]> Files, double QueueWaitMs);
