using System.Text.Json;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Schedulers;

/// <summary>
/// Replays every trajectory of every scheduler_cases*.json in ../shared/data/schedulers (and the
/// extra-cases folder) with the harness constants of the file being replayed:
/// |got − ref| ≤ 1e-5 + 1e-5·|ref| on latents, model outputs and every step's result; integer
/// timesteps exact, float ones and sigmas as float32 values (rtol 1e-6); where a file records
/// them, diffusers' step index per call, where noise is drawn, and the schedulers' extra arrays.
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
        if (c.TryGetProperty("eta", out var eta) && eta.ValueKind == JsonValueKind.Number) ((IEtaScheduler)scheduler).Eta = eta.GetDouble();

        int n = c.GetProperty("num_inference_steps").GetInt32();
        int length = c.GetProperty("timesteps_run").GetArrayLength();
        float[] x = new float[16];
        int start;
        if (c.GetProperty("mode").GetString() == "img2img")
        {
            start = scheduler.SetTimestepsForStrength(n, c.GetProperty("strength").GetDouble());
            // t_start counts solver steps; the list index is t_start × the scheduler's order (Heun, DPM2: 2).
            if (c.GetProperty("t_start").ValueKind == JsonValueKind.Number) Assert.Equal(c.GetProperty("t_start").GetInt32() * scheduler.Order, start);
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
        AssertSchedulerArrays(c, scheduler);
        if (c.TryGetProperty("scheduler_order", out var order)) Assert.Equal(order.GetInt32(), scheduler.Order);
        if (c.TryGetProperty("num_model_calls", out var calls)) Assert.Equal(calls.GetInt32(), length);
        AssertClose(c.GetProperty("initial_latents"), x, Tolerance, "initial_latents");

        var steps = c.GetProperty("steps");
        Assert.Equal(length, steps.GetArrayLength());
        var xin = new float[16];
        var eps = new float[16];
        for (int i = 0; i < length; i++)
        {
            var step = steps[i];
            double t = scheduler.Timesteps[start + i];
            AssertTimestep(step.GetProperty("t").GetDouble(), t, $"step {i} t");
            scheduler.ScaleModelInput(x, t, xin);
            AssertClose(step.GetProperty("scale").GetDouble(), 1.0 / scheduler.ModelInputDivisor(t), 1e-6, $"step {i} scale");
            h.Model(i, t, xin, eps);
            AssertClose(step.GetProperty("model_output"), eps, Tolerance, $"step {i} model_output");
            int callIndex = i;
            bool noiseDrawn = false;
            scheduler.Step(eps, t, x, z => { noiseDrawn = true; h.StepNoise(callIndex, z); });
            AssertClose(step.GetProperty("prev_sample"), x, Tolerance, $"step {i} prev_sample");
            if (step.TryGetProperty("noise_used", out var used)) Assert.True(used.GetBoolean() == noiseDrawn, $"step {i}: noise drawn {noiseDrawn}, diffusers {used.GetBoolean()}");
            if (step.TryGetProperty("step_index", out var stepIndex) && scheduler is SigmaScheduler sigmaScheduler)
                Assert.True(stepIndex.GetInt32() + 1 == sigmaScheduler.StepIndex, $"step {i}: step index {sigmaScheduler.StepIndex - 1}, diffusers {stepIndex.GetInt32()}");
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
        // scheduler_cases_more.json records diffusers' own table; scheduler_cases.json's was built
        // with a textbook linspace that differs from torch's by an ulp in some betas.
        var table = SchedulerRegistry.Instantiate(SchedulerDefaults.Ddim, SchedulerConfig.Parse(
            """{"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}""", "test")).Table;
        var diffusers = SharedData.Load(SharedData.PathOf("data", "schedulers", "scheduler_cases_more.json")).GetProperty("sd_training_table");
        Assert.Equal(Floats(diffusers.GetProperty("betas")), table.Betas);
        Assert.Equal(Floats(diffusers.GetProperty("alphas_cumprod")), table.AlphasCumprod);
        Assert.Equal(Floats(diffusers.GetProperty("sigmas_full")), table.Sigmas);

        var textbook = SharedData.Load(SharedData.PathOf("data", "schedulers", "scheduler_cases.json")).GetProperty("sd_training_table");
        AssertClose(textbook.GetProperty("betas"), table.Betas, 1e-6, "textbook betas");
        AssertClose(textbook.GetProperty("sigmas_full"), table.Sigmas, 1e-6, "textbook sigmas");
    }

    // SD 1.5's published scheduler_config.json: the "pipe config" schedule tables give overrides on.
    private static readonly SchedulerConfig Sd15PipeConfig =
        SchedulerConfig.Parse(AsyncDiffusion.Models.Synthetic.SyntheticPreset.Sd15.SchedulerConfigJson, "sd15");

    private static Scheduler Build(JsonElement c)
    {
        string className = c.GetProperty("scheduler").GetString()!;
        if (c.TryGetProperty("config", out var config))
            return SchedulerRegistry.Instantiate(className, SchedulerConfig.Parse(config.GetRawText(), "case config"));
        var overrides = c.GetProperty("overrides").EnumerateObject().ToDictionary(p => p.Name, p => (object?)(p.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => p.Value.GetDouble(),
            JsonValueKind.String => p.Value.GetString(),
            _ => null,
        }));
        return SchedulerRegistry.FromConfig(className, Sd15PipeConfig, overrides);
    }

    // diffusers' interleaved arrays of DPM2 / DPM2 a, and the singlestep order plan (null = a NaN no step reads).
    private static void AssertSchedulerArrays(JsonElement c, Scheduler scheduler)
    {
        if (scheduler is IInterpolatedSigmas interpolated)
        {
            AssertFloatArray(c.GetProperty("sigmas_interpol"), interpolated.SigmasInterpol, "sigmas_interpol");
            if (c.TryGetProperty("sigmas_up", out var up)) AssertFloatArray(up, interpolated.SigmasUp, "sigmas_up");
            if (c.TryGetProperty("sigmas_down", out var down)) AssertFloatArray(down, interpolated.SigmasDown, "sigmas_down");
        }
        if (scheduler is DpmSolverSinglestepScheduler singlestep)
            Assert.Equal(c.GetProperty("order_list").EnumerateArray().Select(o => o.GetInt32()), singlestep.OrderList);
    }

    private static void AssertFloatArray(JsonElement expected, IReadOnlyList<float> got, string what)
    {
        var exp = expected.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Null ? double.NaN : v.GetDouble()).ToArray();
        Assert.Equal(exp.Length, got.Count);
        for (int i = 0; i < exp.Length; i++)
            if (double.IsNaN(exp[i])) Assert.True(float.IsNaN(got[i]), $"{what}[{i}]: expected NaN, got {got[i]}");
            else AssertClose(exp[i], got[i], 1e-6, $"{what}[{i}]");
    }

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();

    private static void AssertTimesteps(JsonElement expected, IReadOnlyList<double> got)
    {
        var exp = expected.EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(exp.Length, got.Count);
        for (int i = 0; i < exp.Length; i++) AssertTimestep(exp[i], got[i], $"timestep {i}");
    }

    // Integer timesteps exactly; fractional ones as float32 values from a table that may differ by an ulp.
    private static void AssertTimestep(double expected, double got, string what)
    {
        if (expected == Math.Floor(expected) && got == Math.Floor(got)) Assert.True(expected == got, $"{what}: expected {expected}, got {got}");
        else Assert.True(Math.Abs(expected - got) <= 1e-4 + 1e-6 * Math.Abs(expected), $"{what}: expected {expected:R}, got {got:R}");
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
