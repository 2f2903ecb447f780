using AsyncDiffusion.Cluster.Contracts;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace AsyncDiffusion.Cluster.Grains;

/// <summary>See <see cref="IDispatcherGrain"/>. Node reports live in memory and are rebuilt by the next pulls after a move.</summary>
public sealed class DispatcherGrain(
    [PersistentState("dispatch", ClusterStorage.Name)] IPersistentState<DispatchRecord> record,
    IClusterMembershipService membership,
    IOptions<DispatchOptions> options,
    ILogger<DispatcherGrain> log) : Grain, IDispatcherGrain
{
    private sealed record NodeEntry(NodeReport Report, DateTime LastSeen);

    private readonly Dictionary<string, NodeEntry> _nodes = new();
    private DispatchRecord R => record.State;
    private DispatchOptions Options => options.Value;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        this.RegisterGrainTimer(CheckLeases, new GrainTimerCreationOptions(Options.CheckPeriod, Options.CheckPeriod));
        return Task.CompletedTask;
    }

    public async Task<SubmitReply> Enqueue(string jobId, string model)
    {
        if (R.Pending.Any(p => p.JobId == jobId) || R.Leases.ContainsKey(jobId)) return new SubmitReply(SubmitOutcome.Accepted, null);
        var live = LiveNodes().ToList();
        if (!live.Any(n => n.Report.Models.Contains(model)))
        {
            var models = live.SelectMany(n => n.Report.Models).Distinct().Order().ToList();
            return new SubmitReply(SubmitOutcome.NoModel, null,
                Detail: $"no node serves model '{model}'; the cluster serves: {(models.Count > 0 ? string.Join(", ", models) : "nothing (no live node)")}");
        }
        int capacity = live.Sum(n => n.Report.MaxJobs);
        if (R.Pending.Count + R.Leases.Count >= capacity)
        {
            int slots = Math.Max(1, live.Sum(n => n.Report.Slots));
            double perJob = live.Average(n => n.Report.AverageJobSeconds);
            return new SubmitReply(SubmitOutcome.Full, null, Math.Clamp(perJob * capacity / slots, 1, 600),
                $"the cluster's queue is full ({capacity} jobs queued or running on {live.Count} node(s))", capacity);
        }
        R.Pending.Add(new QueuedJob(jobId, model));
        await record.WriteStateAsync();
        return new SubmitReply(SubmitOutcome.Accepted, null);
    }

    public async Task Remove(string jobId)
    {
        if (R.Pending.RemoveAll(p => p.JobId == jobId) > 0) await record.WriteStateAsync();
    }

    public async Task<PullReply> Pull(NodeReport node, string[] held, int free)
    {
        if (_nodes.TryGetValue(node.Name, out var known) && known.Report.Silo != node.Silo && IsAlive(known))
            return new PullReply([], true, $"node name '{node.Name}' is already used by the live node at {known.Report.Silo}");
        _nodes[node.Name] = new NodeEntry(node, DateTime.UtcNow);

        var now = DateTime.UtcNow;
        var holding = held.ToHashSet();
        var dropped = new List<LeasedJob>();
        foreach (var lease in R.Leases.Values.Where(l => l.Node == node.Name && l.Silo == node.Silo).ToList())
        {
            if (holding.Contains(lease.JobId)) R.Leases[lease.JobId] = lease with { RenewedAt = now };
            else dropped.Add(lease); // its end was not reported, or the node never got the lease: queued again, Start sorts it out
        }
        bool changed = dropped.Count > 0;
        if (changed) TakeBack(dropped);
        var granted = new List<JobLease>();
        if (free > 0 && node.Healthy)
        {
            foreach (var job in R.Pending.Where(p => node.Models.Contains(p.Model)).Take(free).ToList())
            {
                R.Pending.Remove(job);
                long epoch = ++R.LastEpoch;
                R.Leases[job.JobId] = new LeasedJob(job.JobId, job.Model, node.Name, node.Silo, epoch, now);
                granted.Add(new JobLease(job.JobId, epoch));
            }
            changed |= granted.Count > 0;
        }
        if (changed) await record.WriteStateAsync();
        return new PullReply(granted.ToArray(), false);
    }

    public async Task Finished(string jobId, long epoch)
    {
        if (R.Leases.TryGetValue(jobId, out var lease) && lease.Epoch == epoch)
        {
            R.Leases.Remove(jobId);
            await record.WriteStateAsync();
        }
    }

    public Task<ClusterView> View()
    {
        var leasedBy = R.Leases.Values.GroupBy(l => l.Node).ToDictionary(g => g.Key, g => g.Count());
        var nodes = _nodes.Values.OrderBy(n => n.Report.Name, StringComparer.Ordinal)
            .Select(n => new NodeView(n.Report, StatusOf(n), leasedBy.GetValueOrDefault(n.Report.Name), n.LastSeen)).ToArray();
        var active = R.Leases.Values.OrderBy(l => l.Epoch).Select(l => l.JobId).Concat(R.Pending.Select(p => p.JobId)).ToArray();
        return Task.FromResult(new ClusterView(nodes, R.Pending.Count, R.Leases.Count, LiveNodes().Sum(n => n.Report.MaxJobs), active, R.Reclaimed));
    }

    /// <summary>Takes back the leases of nodes that are dead (membership) or silent (no renewal within the lease time).</summary>
    private async Task CheckLeases(CancellationToken cancellation)
    {
        var now = DateTime.UtcNow;
        var lost = R.Leases.Values.Where(l => IsDead(l.Silo) || now - l.RenewedAt > Options.LeaseTimeout).OrderBy(l => l.Epoch).ToList();
        if (lost.Count == 0) return;
        foreach (var lease in lost)
            log.LogWarning("Job {Job} goes back to the queue: its node {Node} ({Silo}) is lost (lease {Epoch})", lease.JobId, lease.Node, lease.Silo, lease.Epoch);
        TakeBack(lost);
        R.Reclaimed += lost.Count;
        await record.WriteStateAsync();
    }

    /// <summary>Puts leased jobs back at the front of the queue, in their original order (they were accepted before everything still waiting).</summary>
    private void TakeBack(List<LeasedJob> leases)
    {
        foreach (var lease in leases) R.Leases.Remove(lease.JobId);
        R.Pending.InsertRange(0, leases.OrderBy(l => l.Epoch).Select(l => new QueuedJob(l.JobId, l.Model)));
        // Fence each job at a new epoch so a late result under the old lease is refused. Not awaited in this turn:
        // a job grain may itself be waiting on this grain; the next lease has a higher epoch and fences it anyway.
        foreach (var lease in leases) GrainFactory.GetGrain<IJobGrain>(lease.JobId).Reclaim(++R.LastEpoch).Ignore();
    }

    private bool IsDead(string silo)
    {
        var address = SiloAddress.FromParsableString(silo);
        return membership.CurrentSnapshot.GetSiloStatus(address) == SiloStatus.Dead;
    }

    private bool IsAlive(NodeEntry node) => !IsDead(node.Report.Silo) && DateTime.UtcNow - node.LastSeen < Options.LeaseTimeout;

    private IEnumerable<NodeEntry> LiveNodes() => _nodes.Values.Where(IsAlive);

    private string StatusOf(NodeEntry node) => IsDead(node.Report.Silo) ? "dead" : !IsAlive(node) ? "silent" : node.Report.Healthy ? "up" : "unhealthy";
}

/// <summary>How quickly the dispatcher notices lost nodes.</summary>
public sealed class DispatchOptions
{
    /// <summary>How often leases are checked against membership.</summary>
    public TimeSpan CheckPeriod { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A lease not renewed for this long is taken back even if membership still lists its node.</summary>
    public TimeSpan LeaseTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
