using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Tests.Doubles;

namespace AsyncDiffusion.Cluster.Tests;

public sealed class NodeLossTests
{
    private static ClusterRequest Request(string prompt, int steps = 5, long seed = -1) => new() { Model = "tiny", Prompt = prompt, Steps = steps, Count = 1, Seed = seed, GuidanceScale = 7 };

    [Fact]
    public async Task Thirty_jobs_all_finish_once_each_when_a_node_is_killed_mid_run_and_only_its_jobs_run_again()
    {
        await using var cluster = await TestCluster.Start();
        const int victim = 2;
        string victimName = cluster.NodeName(victim);

        // Submitted through all three nodes; each takes about 5 × 40 ms on one of 6 slots.
        var submitted = new List<ClusterJobSnapshot>();
        for (int i = 0; i < 30; i++) submitted.Add(await cluster.Jobs(i % 3).Submit(Request($"job {i}"), null, null));
        await cluster.WaitFor(() => Task.FromResult(cluster.Executions.InFlight(victimName) > 0), TimeSpan.FromSeconds(20), $"{victimName} running a job");
        await cluster.Orleans.KillSiloAsync(cluster.Silo(victim));

        var finished = new Dictionary<string, ClusterJobSnapshot>();
        await cluster.WaitFor(async () =>
        {
            foreach (var job in submitted.Where(j => !finished.ContainsKey(j.Id)))
                if (await cluster.Jobs(0).Get(job.Id) is { IsFinished: true } done) finished[job.Id] = done;
            return finished.Count == submitted.Count;
        }, TimeSpan.FromSeconds(45), "all 30 jobs finished");

        int rerun = 0;
        foreach (var job in submitted)
        {
            var done = finished[job.Id];
            Assert.Equal(ClusterJobStatus.Succeeded, done.Status);
            Assert.Equal(1, cluster.Store.SucceededWrites(job.Id));
            // Same seed, same image, whichever node made it.
            Assert.Equal(CountingExecutor.ImageFor(job.Request.Prompt, job.Seeds.Length > 0 ? job.Seeds[0] : done.Seeds[0]), await cluster.Jobs(1).Image(job.Id, 0));
            var runs = cluster.Executions.RunsOf(job.Id);
            Assert.NotEmpty(runs);
            // Every run but the committed one was on the killed node, and the committed one was not.
            Assert.All(runs.Take(runs.Count - 1), node => Assert.Equal(victimName, node));
            if (runs.Count > 1)
            {
                rerun++;
                Assert.NotEqual(victimName, done.Node);
            }
        }
        Assert.True(rerun > 0, "the killed node was running jobs, so some must have run again elsewhere");
        Assert.True((await cluster.Jobs(0).View()).Reclaimed >= rerun);
    }

    [Fact]
    public async Task A_job_is_watched_and_cancelled_through_a_node_that_is_not_running_it()
    {
        await using var cluster = await TestCluster.Start();
        var job = await cluster.Jobs(0).Submit(Request("a long one", steps: 500), null, null);
        ClusterJobSnapshot? running = null;
        await cluster.WaitFor(async () => (running = await cluster.Jobs(0).Get(job.Id)) is { Status: ClusterJobStatus.Running, StepsDone: > 0 }, TimeSpan.FromSeconds(20), "the job running");
        int watcher = Enumerable.Range(0, 3).First(i => cluster.NodeName(i) != running!.Node);

        var events = new List<ClusterJobEvent>();
        var watching = Task.Run(async () =>
        {
            await foreach (var e in cluster.Jobs(watcher).Watch(job.Id)) events.Add(e);
        });
        await cluster.WaitFor(() => Task.FromResult(events.Any(e => e.Kind == ClusterEventKind.Step)), TimeSpan.FromSeconds(10), "step events on another node");
        var cancelled = await cluster.Jobs(watcher).Cancel(job.Id);
        await watching.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(ClusterJobStatus.Cancelled, cancelled!.Status);
        Assert.Equal([ClusterEventKind.Queued, ClusterEventKind.Started], events.Take(2).Select(e => e.Kind));
        Assert.Equal(ClusterEventKind.Done, events[^1].Kind);
        Assert.Equal(ClusterJobStatus.Cancelled, events[^1].Status);
        // The running node hears of it at its next progress report and stops.
        await cluster.WaitFor(() => Task.FromResult(cluster.Executions.WasCancelled(job.Id)), TimeSpan.FromSeconds(5), "the runner stopping");
        Assert.Equal(ClusterJobStatus.Cancelled, (await cluster.Jobs(1).Get(job.Id))!.Status);
    }

    [Fact]
    public async Task A_retry_with_the_same_idempotency_key_on_another_node_gets_the_same_job_and_runs_it_once()
    {
        await using var cluster = await TestCluster.Start();
        var first = await cluster.Jobs(0).Submit(Request("idempotent"), null, "client-42");
        var retry = await cluster.Jobs(2).Submit(Request("idempotent"), null, "client-42");
        Assert.Equal(first.Id, retry.Id);
        Assert.Equal(first.Request.Seed, retry.Request.Seed); // the seed resolved at the first submission

        await cluster.WaitFor(async () => (await cluster.Jobs(1).Get(first.Id))!.IsFinished, TimeSpan.FromSeconds(20), "the job finished");
        Assert.Single(cluster.Executions.RunsOf(first.Id));

        var conflict = await Assert.ThrowsAsync<Server.Requests.BadRequestException>(() => cluster.Jobs(1).Submit(Request("something else"), null, "client-42"));
        Assert.Equal(409, conflict.Status);
        var noModel = await Assert.ThrowsAsync<Server.Requests.BadRequestException>(() => cluster.Jobs(1).Submit(Request("x") with { Model = "sd15" }, null, null));
        Assert.Contains("no node serves model 'sd15'", noModel.Message);
        Assert.Contains("tiny", noModel.Message);
    }
}
