using System.Globalization;
using System.Text;
using System.Text.Json;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Node;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server;
using AsyncDiffusion.Server.Jobs;
using AsyncDiffusion.Server.Requests;

namespace AsyncDiffusion.Cluster.Http;

/// <summary>
/// The routes a cluster node answers differently: the native jobs API, progress, metrics and
/// readiness read the cluster (so every node shows the same jobs), plus <c>GET /api/v1/cluster</c>.
/// </summary>
public static class ClusterEndpoints
{
    public static void Map(IEndpointRouteBuilder routes, ServerParts parts, ClusterJobs jobs, NodeHealth health, NodeIdentity identity)
    {
        var catalog = parts.Catalog;
        routes.MapPost("/api/v1/jobs", (Delegate)(async (HttpContext ctx) =>
        {
            var b = await Lenient.ReadObjectAsync(ctx.Request);
            var request = JobsEndpoints.ToRequest(b, parts.Options);
            string model = b.String("model") is { } wanted ? catalog.Find(wanted)?.Name ?? wanted : catalog.Current.Name;
            PlannedShape? shape = null;
            if (model == catalog.Current.Name)
            {
                // This node has the model: plan here, so bad input is a 400 now. Otherwise a node with the model checks it.
                var engine = catalog.Engine;
                shape = RemoteJobSubmitter.ShapeOf(GenerationPlan.Create(request, engine.Model, engine.Limits));
            }
            var job = await jobs.Submit(ClusterRequest.From(request, model), shape, RemoteJobSubmitter.IdempotencyKey(ctx));
            return Results.Json(Describe(job), statusCode: 202);
        }));
        routes.MapGet("/api/v1/jobs/{id}", async (string id) => await jobs.Get(id) is { } job ? Results.Json(Describe(job)) : NotFound(id));
        routes.MapDelete("/api/v1/jobs/{id}", async (string id) => await jobs.Cancel(id) is { } job ? Results.Json(Describe(job)) : NotFound(id));
        routes.MapGet("/api/v1/jobs/{id}/events", async (string id, HttpContext ctx) =>
        {
            if (await jobs.Get(id) is null) return NotFound(id);
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            await foreach (var e in jobs.Watch(id, ctx.RequestAborted))
            {
                var (name, data) = e.Kind switch
                {
                    ClusterEventKind.Queued => ("queued", (object)new { id, position = 0 }),
                    ClusterEventKind.Started => ("started", new { id, node = e.Node }),
                    ClusterEventKind.Step => ("step", new { id, step = e.StepsDone, steps = e.StepsTotal }),
                    ClusterEventKind.Image => ("image", new { id, image = e.Image, seed = e.Seed, url = $"/api/v1/jobs/{id}/images/{e.Image}" }),
                    ClusterEventKind.Requeued => ("requeued", new { id, lost_node = e.Node }),
                    _ => ("done", e.Error is null ? new { id, state = State(e.Status) } : (object)new { id, state = State(e.Status), error = e.Error }),
                };
                await ctx.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data)}\n\n");
                await ctx.Response.Body.FlushAsync();
            }
            return Results.Empty;
        });
        routes.MapGet("/api/v1/jobs/{id}/images/{index:int}", async (string id, int index) =>
        {
            if (await jobs.Get(id) is not { } job) return NotFound(id);
            if (job.Status != ClusterJobStatus.Succeeded)
                return Results.Json(new { error = "not_ready", detail = $"Job {id} is {State(job.Status)}." }, statusCode: 409);
            return await jobs.Image(id, index) is { } png ? Results.File(png, "image/png", $"{id}-{index}.png") : NotFound($"{id}/images/{index}");
        });
        routes.MapGet("/api/v1/jobs/{id}/preview", (string id) =>
            Results.Json(new { error = "not_found", detail = $"Job {id}: previews are not shared between cluster nodes." }, statusCode: 404));

        routes.MapGet("/api/v1/cluster", async () =>
        {
            var view = await jobs.View();
            return Results.Json(new
            {
                node = identity.Name,
                capacity = view.Capacity,
                queued = view.Pending,
                running = view.Leased,
                reclaimed = view.Reclaimed,
                nodes = view.Nodes.Select(n => new
                {
                    name = n.Report.Name,
                    url = n.Report.Url,
                    status = n.Status,
                    models = n.Report.Models,
                    slots = n.Report.Slots,
                    max_jobs = n.Report.MaxJobs,
                    running = n.Leased,
                    succeeded = n.Report.Succeeded,
                    failed = n.Report.Failed,
                    images = n.Report.Images,
                    last_seen = n.LastSeen,
                }),
            });
        });

        routes.MapGet("/sdapi/v1/progress", async () =>
        {
            var view = await jobs.View();
            ClusterJobSnapshot? job = null;
            foreach (var id in view.ActiveJobs.Take(8))
                if (await jobs.Get(id) is { IsFinished: false } found) { job = found; break; }
            double progress = job is { StepsTotal: > 0 } ? (double)job.StepsDone / job.StepsTotal : 0;
            double elapsed = job?.StartedAt is { } started ? (DateTime.UtcNow - started).TotalSeconds : 0;
            return Results.Json(new
            {
                progress,
                eta_relative = progress > 0 ? elapsed / progress - elapsed : 0,
                state = new
                {
                    skipped = false, interrupted = false, job = job?.Id ?? "", job_count = view.ActiveJobs.Length,
                    job_timestamp = job?.SubmittedAt.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) ?? "0",
                    job_no = 0, sampling_step = job?.StepsDone ?? 0, sampling_steps = job?.StepsTotal ?? 0,
                },
                current_image = (string?)null,
                textinfo = (string?)null,
            });
        });

        routes.MapGet("/metrics", async () =>
        {
            var text = new StringBuilder(parts.Metrics.Render(catalog.Engine.Stats));
            try
            {
                RenderCluster(text, await jobs.View());
            }
            catch (Exception)
            {
                text.Append("# the cluster's view is unavailable now\nasyncdiffusion_cluster_up 0\n");
            }
            return Results.Text(text.ToString(), "text/plain; version=0.0.4");
        });

        routes.MapGet("/ready", () => health.Unready() is { } reason
            ? Results.Json(new { status = "unready", reason, node = identity.Name }, statusCode: 503)
            : Results.Json(new { status = "ready", model = catalog.Current.Name, built_in = catalog.Current.BuiltIn, node = identity.Name }));
    }

    private static void RenderCluster(StringBuilder sb, ClusterView view)
    {
        void Metric(string name, string help, string type, IEnumerable<(string Labels, double Value)> values)
        {
            sb.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var (labels, value) in values) sb.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
        }
        static string Node(NodeView n) => $"{{node=\"{n.Report.Name.Replace("\"", "'")}\"}}";
        Metric("asyncdiffusion_cluster_up", "1 when this node reads the cluster's view.", "gauge", [("", 1)]);
        Metric("asyncdiffusion_cluster_nodes", "Nodes up.", "gauge", [("", view.Nodes.Count(n => n.Status == "up"))]);
        Metric("asyncdiffusion_cluster_queue_depth", "Jobs waiting for a node, cluster-wide.", "gauge", [("", view.Pending)]);
        Metric("asyncdiffusion_cluster_running_jobs", "Jobs leased to nodes, cluster-wide.", "gauge", [("", view.Leased)]);
        Metric("asyncdiffusion_cluster_capacity", "Jobs the cluster accepts before 429 (the live nodes' admission limits added up).", "gauge", [("", view.Capacity)]);
        Metric("asyncdiffusion_cluster_reclaimed_total", "Jobs taken back from lost nodes and queued again.", "counter", [("", view.Reclaimed)]);
        Metric("asyncdiffusion_node_up", "1 for a node that is up.", "gauge", view.Nodes.Select(n => (Node(n), n.Status == "up" ? 1.0 : 0)));
        Metric("asyncdiffusion_node_running_jobs", "Jobs leased to the node.", "gauge", view.Nodes.Select(n => (Node(n), (double)n.Leased)));
        Metric("asyncdiffusion_node_jobs_succeeded_total", "Jobs the node committed.", "counter", view.Nodes.Select(n => (Node(n), (double)n.Report.Succeeded)));
        Metric("asyncdiffusion_node_images_generated_total", "Images the node made.", "counter", view.Nodes.Select(n => (Node(n), (double)n.Report.Images)));
    }

    private static string State(ClusterJobStatus status) => status.ToString().ToLowerInvariant();

    private static IResult NotFound(string id) => Results.Json(new { error = "not_found", detail = $"No job '{id}'." }, statusCode: 404);

    private static object Describe(ClusterJobSnapshot job) => new
    {
        id = job.Id,
        state = State(job.Status),
        steps_done = job.StepsDone,
        steps_total = job.StepsTotal,
        submitted_at = job.SubmittedAt,
        started_at = job.StartedAt,
        seeds = job.Seeds,
        width = job.Width,
        height = job.Height,
        scheduler = job.Scheduler,
        prompt = job.Request.Prompt,
        negative_prompt = job.Request.NegativePrompt,
        model = job.Request.Model,
        node = job.Node,
        attempts = job.Attempts,
        events = $"/api/v1/jobs/{job.Id}/events",
        images = job.Status == ClusterJobStatus.Succeeded
            ? Enumerable.Range(0, job.ImageCount).Select(i => new { url = $"/api/v1/jobs/{job.Id}/images/{i}", seed = job.Seeds[i], infotext = job.Infotexts?[i] }).ToArray()
            : null,
        error = job.Error,
    };
}
