using System.Text.Json;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Schedulers;

/// <summary>
/// Replays every trajectory in ../shared/data/schedulers (and the extra-cases folder) with the
/// harness constants of the file being replayed: |got − ref| ≤ 1e-5 + 1e-5·|ref|, integer
/// timesteps exact.
/// </summary>
public class SchedulerConformanceTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in SharedData.CaseFiles("schedulers", "scheduler_cases"))
            foreach (var c in SharedData.Load(file).GetProperty("cases").EnumerateArray())
                data.Add(file, c.GetProperty("id").GetString()!);
        return data;
    }

    public static TheoryData<string, int> ScheduleTables()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in SharedData.CaseFiles("schedulers", "scheduler_cases"))
            if (SharedData.Load(file).TryGetProperty("schedule_tables", out var tables))
                for (int i = 0; i < tables.GetArrayLength(); i++) data.Add(file, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TrajectoryMatchesReference(string file, string id)
    {
        var root = SharedData.Load(file);
        var c = root.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("id").GetString() == id);
        var h = new Harness(root.GetProperty("harness").GetProperty("params"));
        var scheduler = Build(c);
        if (c.TryGetProperty("eta", out var eta) && eta.ValueKind == JsonValueKind.Number) ((DdimScheduler)scheduler).Eta = eta.GetDouble();

        int n = c.GetProperty("num_inference_steps").GetInt32();
        int length = c.GetProperty("timesteps_run").GetArrayLength();
        float[] x = new float[16];
        int start;
        if (c.GetProperty("mode").GetString() == "img2img")
        {
            start = scheduler.SetTimestepsForStrength(n, c.GetProperty("strength").GetDouble());
            if (c.GetProperty("t_start").ValueKind == JsonValueKind.Number) Assert.Equal(c.GetProperty("t_start").GetInt32(), start);
            var begin = c.GetProperty("begin_index");
            Assert.Equal(begin.ValueKind == JsonValueKind.Null ? null : begin.GetInt32(), scheduler.BeginIndex);
            var original = h.Original();
            var noise = h.Img2ImgNoise();
            Assert.Equal(c.GetProperty("latent_timestep").GetDouble(), scheduler.Timesteps[start]);
            scheduler.AddNoise(original, noise, scheduler.Timesteps[start], x);
        }
        else
        {
            scheduler.SetTimesteps(n);
            start = 0;
            var xT = h.XT();
            for (int k = 0; k < 16; k++) x[k] = (float)(scheduler.InitNoiseSigma * xT[k]);
        }
        AssertTimesteps(c.GetProperty("timesteps"), scheduler.Timesteps);
        if (c.TryGetProperty("sigmas", out var sigmas)) AssertClose(sigmas, scheduler.Sigmas.Select(s => (double)s).ToArray(), 1e-6, "sigmas");
        AssertClose(c.GetProperty("init_noise_sigma").GetDouble(), scheduler.InitNoiseSigma, 1e-6, "init_noise_sigma");
        AssertTimesteps(c.GetProperty("timesteps_run"), scheduler.Timesteps.Skip(start).ToArray());
        AssertClose(c.GetProperty("initial_latents"), x, Tolerance, "initial_latents");

        var steps = c.GetProperty("steps");
        Assert.Equal(length, steps.GetArrayLength());
        var xin = new float[16];
        var eps = new float[16];
        for (int i = 0; i < length; i++)
        {
            var step = steps[i];
            double t = scheduler.Timesteps[start + i];
            Assert.Equal(step.GetProperty("t").GetDouble(), t, 4);
            scheduler.ScaleModelInput(x, t, xin);
            AssertClose(step.GetProperty("scale").GetDouble(), 1.0 / scheduler.ModelInputDivisor(t), 1e-6, $"step {i} scale");
            h.Model(i, t, xin, eps);
            AssertClose(step.GetProperty("model_output"), eps, Tolerance, $"step {i} model_output");
            int callIndex = i;
            scheduler.Step(eps, t, x, z => h.StepNoise(callIndex, z));
            AssertClose(step.GetProperty("prev_sample"), x, Tolerance, $"step {i} prev_sample");
        }
        AssertClose(c.GetProperty("final_sample"), x, Tolerance, "final_sample");
    }

    [Theory]
    [MemberData(nameof(ScheduleTables))]
    public void ScheduleTableMatchesReference(string file, int index)
    {
        var table = SharedData.Load(file).GetProperty("schedule_tables")[index];
        var scheduler = Build(table);
        int n = table.GetProperty("n").GetInt32();
        if (table.TryGetProperty("strength", out var s) && s.ValueKind == JsonValueKind.Number) scheduler.SetTimestepsForStrength(n, s.GetDouble());
        else scheduler.SetTimesteps(n);
        AssertTimesteps(table.GetProperty("timesteps"), scheduler.Timesteps);
        if (table.TryGetProperty("sigmas", out var sigmas)) AssertClose(sigmas, scheduler.Sigmas.Select(x => (double)x).ToArray(), 1e-6, "sigmas");
        AssertClose(table.GetProperty("init_noise_sigma").GetDouble(), scheduler.InitNoiseSigma, 1e-6, "init_noise_sigma");
    }

    [Fact]
    public void TrainingTableIsBuiltExactlyAsDiffusersBuildsIt()
    {
        var reference = SharedData.Load(SharedData.CaseFiles("schedulers", "scheduler_cases")[0]).GetProperty("sd_training_table");
        var table = SchedulerRegistry.Instantiate(SchedulerDefaults.Ddim, SchedulerConfig.Parse(
            """{"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}""", "test")).Table;
        Assert.Equal(Floats(reference.GetProperty("betas")), table.Betas);
        Assert.Equal(Floats(reference.GetProperty("alphas_cumprod")), table.AlphasCumprod);
        Assert.Equal(Floats(reference.GetProperty("sigmas_full")), table.Sigmas);
    }

    private static Scheduler Build(JsonElement c)
    {
        string className = c.GetProperty("scheduler").GetString()!;
        var config = SchedulerConfig.Parse(c.GetProperty("config").GetRawText(), "case config");
        return SchedulerRegistry.Instantiate(className, config);
    }

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();

    private static void AssertTimesteps(JsonElement expected, IReadOnlyList<double> got)
    {
        var exp = expected.EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(exp.Length, got.Count);
        for (int i = 0; i < exp.Length; i++)
        {
            if (exp[i] == Math.Floor(exp[i]) && got[i] == Math.Floor(got[i])) Assert.Equal(exp[i], got[i]);
            else Assert.True(Math.Abs(exp[i] - got[i]) <= 1e-4, $"timestep {i}: expected {exp[i]}, got {got[i]}");
        }
    }

    private static void AssertClose(JsonElement expected, IReadOnlyList<float> got, double tol, string what) =>
        AssertClose(expected, got.Select(v => (double)v).ToArray(), tol, what);

    private static void AssertClose(JsonElement expected, double[] got, double tol, string what)
    {
        var exp = expected.EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(exp.Length, got.Length);
        for (int i = 0; i < exp.Length; i++) AssertClose(exp[i], got[i], tol, $"{what}[{i}]");
    }

    private static void AssertClose(double expected, double got, double tol, string what) =>
        Assert.True(Math.Abs(got - expected) <= tol + tol * Math.Abs(expected), $"{what}: expected {expected:R}, got {got:R}");

    /// <summary>The closed-form latents, model and noise of the vector file's harness.</summary>
    private sealed class Harness(JsonElement p)
    {
        private double P(string group, string name) => p.GetProperty(group).GetProperty(name).GetDouble();

        public double[] XT() => Enumerable.Range(0, 16).Select(k => P("x_T", "A") * Math.Sin(P("x_T", "B") * k + P("x_T", "C"))).ToArray();

        public float[] Original() => Enumerable.Range(0, 16)
            .Select(k => (float)(P("img2img_original", "A") * Math.Cos(P("img2img_original", "B") * k + P("img2img_original", "C")))).ToArray();

        public float[] Img2ImgNoise() => Enumerable.Range(0, 16)
            .Select(k => (float)(P("img2img_noise", "A") * Math.Sin(P("img2img_noise", "B") * k + P("img2img_noise", "C")))).ToArray();

        public void Model(int i, double t, float[] xin, float[] output)
        {
            for (int k = 0; k < 16; k++)
                output[k] = (float)(P("model", "A") * Math.Sin(P("model", "B") * k + P("model", "C") * i) + P("model", "D") * Math.Cos(P("model", "E") * k)
                    + P("model", "F") * xin[k] + P("model", "G") * (t / 1000));
        }

        public void StepNoise(int i, Span<float> z)
        {
            for (int k = 0; k < z.Length; k++)
                z[k] = (float)(P("step_noise", "A") * Math.Sin(P("step_noise", "B") * k + P("step_noise", "C") * i + P("step_noise", "D")));
        }
    }
}
