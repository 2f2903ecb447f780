using System.Globalization;
using System.Text;
using AsyncDiffusion.Engine;
using AsyncDiffusion.Server.Configuration;

namespace AsyncDiffusion.Server.Monitoring;

/// <summary>Prometheus text exposition of the engine's counters plus step and end-to-end latency histograms.</summary>
public sealed class ServerMetrics
{
    private static readonly double[] StepBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly double[] JobBuckets = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
    private readonly Histogram _steps = new(StepBuckets), _jobs = new(JobBuckets);
    private long _rejected, _errors;

    public void Observe(Job job)
    {
        if (job.Completion.IsCompletedSuccessfully)
        {
            foreach (var ms in job.Completion.Result.Generation.Timings.UNetStepMs) _steps.Observe(ms / 1000);
            _jobs.Observe((DateTime.UtcNow - job.SubmittedAt).TotalSeconds);
        }
    }

    public void Rejected() => Interlocked.Increment(ref _rejected);
    public void Error() => Interlocked.Increment(ref _errors);

    public string Render(EngineStats s)
    {
        var sb = new StringBuilder();
        void Gauge(string name, string help, double value, string type = "gauge") =>
            sb.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n{name} {value.ToString(CultureInfo.InvariantCulture)}\n");
        Gauge("asyncdiffusion_queue_depth", "Jobs waiting to start.", s.Queued);
        Gauge("asyncdiffusion_running_jobs", "Jobs being worked on.", s.Running);
        Gauge("asyncdiffusion_images_generated_total", "Images finished.", s.Images, "counter");
        Gauge("asyncdiffusion_jobs_succeeded_total", "Jobs that succeeded.", s.Succeeded, "counter");
        Gauge("asyncdiffusion_jobs_failed_total", "Jobs that failed.", s.Failed, "counter");
        Gauge("asyncdiffusion_jobs_cancelled_total", "Jobs cancelled.", s.Cancelled, "counter");
        Gauge("asyncdiffusion_rejections_total", "Requests refused because the queue was full.", Interlocked.Read(ref _rejected), "counter");
        Gauge("asyncdiffusion_errors_total", "Requests answered with an error.", Interlocked.Read(ref _errors), "counter");
        Gauge("asyncdiffusion_unet_calls_total", "UNet calls.", s.UNetCalls, "counter");
        Gauge("asyncdiffusion_unet_rows_total", "UNet batch rows.", s.UNetRows, "counter");
        _steps.Render(sb, "asyncdiffusion_step_seconds", "Wall time of one denoising step (UNet call).");
        _jobs.Render(sb, "asyncdiffusion_job_seconds", "End-to-end latency of finished jobs.");
        return sb.ToString();
    }

    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private double _sum;
        private long _count;

        public void Observe(double value)
        {
            lock (this)
            {
                int i = Array.FindIndex(bounds, b => value <= b);
                _counts[i < 0 ? bounds.Length : i]++;
                _sum += value;
                _count++;
            }
        }

        public void Render(StringBuilder sb, string name, string help)
        {
            lock (this)
            {
                sb.Append($"# HELP {name} {help}\n# TYPE {name} histogram\n");
                long cumulative = 0;
                for (int i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts[i];
                    sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i]}\"}} {cumulative}\n");
                }
                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_count}\n{name}_sum {_sum}\n{name}_count {_count}\n");
            }
        }
    }
}
