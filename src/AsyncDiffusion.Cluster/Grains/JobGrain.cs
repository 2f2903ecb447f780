using AsyncDiffusion.Cluster.Contracts;
using Orleans.Runtime;

namespace AsyncDiffusion.Cluster.Grains;

/// <summary>See <see cref="IJobGrain"/>. Progress and events live in memory; a re-activated job rebuilds its events from the record.</summary>
public sealed class JobGrain([PersistentState("job", ClusterStorage.Name)] IPersistentState<JobRecord> record) : Grain, IJobGrain
{
    private readonly List<ClusterJobEvent> _events = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _incarnation = Guid.NewGuid().ToString("N");
    private int _stepsDone;

    private JobRecord R => record.State;
    private string Id => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (record.RecordExists && R.Request is not null)
        {
            Emit(ClusterEventKind.Queued);
            if (R.Status == ClusterJobStatus.Running) Emit(ClusterEventKind.Started, node: R.Node);
            if (R.IsFinished) EmitDone();
        }
        return Task.CompletedTask;
    }

    public async Task<SubmitReply> Submit(ClusterRequest request, string fingerprint, PlannedShape? shape)
    {
        if (record.RecordExists && R.Request is not null)
        {
            if (R.Fingerprint != fingerprint)
                return new SubmitReply(SubmitOutcome.Conflict, Snapshot(), Detail: "this Idempotency-Key was used for a different request");
            // A retry of an accepted submission: make sure it is queued (the first try may have died between the two writes).
            if (!R.IsFinished && R.Status == ClusterJobStatus.Queued)
                await Dispatcher.Enqueue(Id, request.Model);
            return new SubmitReply(SubmitOutcome.Existing, Snapshot());
        }
        R.Request = request;
        R.Fingerprint = fingerprint;
        R.Status = ClusterJobStatus.Queued;
        R.SubmittedAt = DateTime.UtcNow;
        R.Shape = shape;
        R.StepsTotal = shape?.StepsTotal ?? 0;
        await record.WriteStateAsync();
        SubmitReply queued;
        try
        {
            queued = await Dispatcher.Enqueue(Id, request.Model);
        }
        catch
        {
            await Forget();
            throw;
        }
        if (queued.Outcome != SubmitOutcome.Accepted)
        {
            await Forget();
            return queued;
        }
        Emit(ClusterEventKind.Queued);
        return new SubmitReply(SubmitOutcome.Accepted, Snapshot());
    }

    private async Task Forget()
    {
        try { await record.ClearStateAsync(); }
        catch (Exception) { /* the dispatcher never saw it: an unqueued record is harmless and a retry rewrites it */ }
        record.State = new JobRecord();
    }

    public async Task<ClusterRequest?> Start(long epoch, string node)
    {
        if (R.Request is null || R.IsFinished || epoch < R.Fence) return null;
        R.Fence = epoch;
        R.Status = ClusterJobStatus.Running;
        R.Node = node;
        R.StartedAt ??= DateTime.UtcNow;
        R.Attempts++;
        await record.WriteStateAsync();
        _stepsDone = 0;
        Emit(ClusterEventKind.Started, node: node);
        return R.Request;
    }

    public Task<bool> Progress(long epoch, int stepsDone, int stepsTotal)
    {
        if (R.IsFinished || epoch != R.Fence) return Task.FromResult(false);
        if (stepsTotal > 0) R.StepsTotal = stepsTotal;
        if (stepsDone > _stepsDone)
        {
            _stepsDone = stepsDone;
            Emit(ClusterEventKind.Step, stepsDone, R.StepsTotal);
        }
        return Task.FromResult(true);
    }

    public async Task<bool> Complete(long epoch, ClusterJobResult? result, string? error, bool cancelled)
    {
        if (R.Request is null || R.IsFinished || epoch != R.Fence || R.Status != ClusterJobStatus.Running) return false;
        R.Status = cancelled ? ClusterJobStatus.Cancelled : result is not null ? ClusterJobStatus.Succeeded : ClusterJobStatus.Failed;
        R.Result = result;
        R.Error = result is null && !cancelled ? error ?? "the job failed" : null;
        await record.WriteStateAsync();
        if (result is not null)
        {
            _stepsDone = Math.Max(_stepsDone, R.StepsTotal);
            for (int i = 0; i < result.Files.Length; i++) Emit(ClusterEventKind.Image, image: i, seed: result.Seeds[i]);
        }
        EmitDone();
        return true;
    }

    public async Task<bool> Reclaim(long epoch)
    {
        if (R.Request is null || R.IsFinished) return false;
        if (epoch > R.Fence)
        {
            R.Fence = epoch;
            R.Status = ClusterJobStatus.Queued;
            string? lost = R.Node;
            R.Node = null;
            await record.WriteStateAsync();
            _stepsDone = 0;
            Emit(ClusterEventKind.Requeued, node: lost);
        }
        return true;
    }

    public Task<ClusterJobSnapshot?> Get() => Task.FromResult(R.Request is null ? null : Snapshot());

    public async Task<ClusterJobSnapshot?> Cancel()
    {
        if (R.Request is null) return null;
        if (!R.IsFinished)
        {
            R.Status = ClusterJobStatus.Cancelled;
            await record.WriteStateAsync();
            EmitDone();
            // A queued job leaves the queue now; a running one stops when its node next reports progress.
            Dispatcher.Remove(Id).Ignore();
        }
        return Snapshot();
    }

    public Task<byte[]?> Image(int index) =>
        Task.FromResult(R.Result is { } r && index >= 0 && index < r.Files.Length ? r.Files[index] : null);

    public async Task<ClusterJobEvent[]> Events(string? incarnation, int after, TimeSpan wait)
    {
        int from = incarnation == _incarnation ? after + 1 : 0;
        if (_events.Count <= from && !R.IsFinished && wait > TimeSpan.Zero)
            await Task.WhenAny(_changed.Task, Task.Delay(wait));
        return _events.Skip(from).ToArray();
    }

    private IDispatcherGrain Dispatcher => GrainFactory.GetGrain<IDispatcherGrain>(0);

    private void Emit(ClusterEventKind kind, int stepsDone = 0, int stepsTotal = 0, int image = 0, long seed = 0, string? node = null)
    {
        _events.Add(new ClusterJobEvent(_events.Count, kind, stepsDone, stepsTotal, image, seed, R.Status, R.Error, node, _incarnation));
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private void EmitDone() => Emit(ClusterEventKind.Done, _stepsDone, R.StepsTotal);

    private ClusterJobSnapshot Snapshot() => new()
    {
        Id = Id,
        Status = R.Status,
        Request = R.Request!,
        StepsDone = R.Status == ClusterJobStatus.Succeeded ? R.StepsTotal : _stepsDone,
        StepsTotal = R.StepsTotal,
        SubmittedAt = R.SubmittedAt,
        StartedAt = R.StartedAt,
        Node = R.Node,
        Seeds = R.Result?.Seeds ?? R.Shape?.Seeds ?? [],
        Width = R.Result?.Width ?? R.Shape?.Width,
        Height = R.Result?.Height ?? R.Shape?.Height,
        Scheduler = R.Result?.Scheduler ?? R.Shape?.Scheduler,
        Infotexts = R.Result?.Infotexts,
        ImageCount = R.Result?.Files.Length ?? 0,
        Error = R.Error,
        Attempts = R.Attempts,
    };
}
