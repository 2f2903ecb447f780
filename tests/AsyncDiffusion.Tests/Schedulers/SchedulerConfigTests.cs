using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Schedulers;

public class SchedulerConfigTests
{
    // SD 1.5's scheduler/scheduler_config.json as published (a PNDMScheduler without timestep_spacing), as the sd15 preset writes it.
    private static readonly string Sd15 = AsyncDiffusion.Models.Synthetic.SyntheticPreset.Sd15.SchedulerConfigJson;

    [Fact]
    public void ModelConfigBuildsItsOwnClass()
    {
        var scheduler = SchedulerRegistry.CreateDefault(SchedulerConfig.Parse(Sd15, "sd15/scheduler_config.json"));
        Assert.IsType<PndmScheduler>(scheduler);
        scheduler.SetTimesteps(4);
        Assert.Equal(new double[] { 751, 501, 501, 251, 1 }, scheduler.Timesteps);
    }

    [Fact]
    public void SwitchingSchedulerInheritsTheModelConfigLikeFromConfig()
    {
        // PNDM's registered "leading" spacing and steps_offset = 1 carry over to Euler a,
        // whose own default would be "linspace".
        var config = SchedulerConfig.Parse(Sd15, "sd15");
        var eulerA = SchedulerRegistry.Create("Euler a", config);
        eulerA.SetTimesteps(4);
        Assert.IsType<EulerAncestralDiscreteScheduler>(eulerA);
        Assert.Equal(new double[] { 751, 501, 251, 1 }, eulerA.Timesteps);

        var standalone = SchedulerRegistry.Instantiate(SchedulerDefaults.EulerAncestral, SchedulerConfig.Empty(SchedulerDefaults.EulerAncestral));
        standalone.SetTimesteps(4);
        Assert.Equal(new double[] { 999, 666, 333, 0 }, standalone.Timesteps);
    }

    [Theory]
    [InlineData("DPM++ 2M Karras", typeof(DpmSolverMultistepScheduler))]
    [InlineData("dpmpp_2m_karras", typeof(DpmSolverMultistepScheduler))]
    [InlineData("Euler a", typeof(EulerAncestralDiscreteScheduler))]
    [InlineData("k_euler_a", typeof(EulerAncestralDiscreteScheduler))]
    [InlineData("EulerDiscreteScheduler", typeof(EulerDiscreteScheduler))]
    [InlineData("ddim", typeof(DdimScheduler))]
    [InlineData("PLMS", typeof(PndmScheduler))]
    [InlineData("LMS Karras", typeof(LmsDiscreteScheduler))]
    [InlineData("lcm", typeof(LcmScheduler))]
    [InlineData("DDPM", typeof(DdpmScheduler))]
    public void RegistryResolvesTheNamesUsersType(string name, Type type) =>
        Assert.IsType(type, SchedulerRegistry.Create(name, SchedulerConfig.Parse(Sd15, "sd15")));

    [Fact]
    public void KarrasNamesTurnOnKarrasSigmas()
    {
        var plain = SchedulerRegistry.Create("DPM++ 2M", SchedulerConfig.Parse(Sd15, "sd15"));
        var karras = SchedulerRegistry.Create("DPM++ 2M Karras", SchedulerConfig.Parse(Sd15, "sd15"));
        plain.SetTimesteps(20);
        karras.SetTimesteps(20);
        Assert.NotEqual(plain.Timesteps, karras.Timesteps);
        Assert.Equal(14.614646911621094, karras.Sigmas[0], 5);
    }

    [Fact]
    public void UnknownSchedulerNameListsTheKnownOnes()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.Create("Heun++", SchedulerConfig.Parse(Sd15, "sd15")));
        Assert.Contains("'Heun++'", e.Message);
        Assert.Contains("Euler a", e.Message);
        Assert.Contains("DPM++ 2M Karras", e.Message);
    }

    [Fact]
    public void WrongTypeNamesFileFieldValueAndExpectation()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerConfig.Parse("""{"_class_name": "DDIMScheduler", "steps_offset": "one"}""", "model/scheduler/scheduler_config.json"));
        Assert.Contains("model/scheduler/scheduler_config.json", e.Message);
        Assert.Contains("steps_offset", e.Message);
        Assert.Contains("\"one\"", e.Message);
        Assert.Contains("expected an integer", e.Message);

        e = Assert.Throws<AsyncDiffusionException>(() => SchedulerConfig.Parse("""{"clip_sample": 1}""", "cfg.json"));
        Assert.Contains("clip_sample is 1; expected true or false", e.Message);
    }

    [Fact]
    public void UnsupportedValueOfAKnownSettingIsRejected()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "sideways"}""", "cfg.json");
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.CreateDefault(config).SetTimesteps(10));
        Assert.Contains("timestep_spacing is \"sideways\"", e.Message);
        Assert.Contains("\"leading\"", e.Message);
    }

    [Fact]
    public void UnknownKeysAndPythonInfinityAreAccepted()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "some_future_key": [1, 2], "note": "Infinity inside a string"}""", "cfg.json");
        var s = SchedulerRegistry.CreateDefault(config);
        s.SetTimesteps(10);
        Assert.Equal(10, s.Timesteps.Count);
    }

    [Fact]
    public void UnimplementedSchedulerClassIsAClearError()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "UniPCMultistepScheduler"}""", "cfg.json");
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.CreateDefault(config));
        Assert.Contains("UniPCMultistepScheduler", e.Message);
        Assert.Contains("Euler a", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(1001)]
    public void StepsOutOfRangeAreRejected(int steps)
    {
        var s = SchedulerRegistry.Create("Euler", SchedulerConfig.Parse(Sd15, "sd15"));
        var e = Assert.Throws<AsyncDiffusionException>(() => s.SetTimesteps(steps));
        Assert.Contains($"got {steps}", e.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(1.01)]
    [InlineData(double.NaN)]
    public void StrengthOutsideZeroOneIsRejected(double strength)
    {
        var s = SchedulerRegistry.Create("DDIM", SchedulerConfig.Parse(Sd15, "sd15"));
        var e = Assert.Throws<AsyncDiffusionException>(() => s.SetTimestepsForStrength(20, strength));
        Assert.Contains("(0, 1]", e.Message);
    }

    [Fact]
    public void StrengthThatRunsNoStepIsRejected()
    {
        var s = SchedulerRegistry.Create("DDIM", SchedulerConfig.Parse(Sd15, "sd15"));
        var e = Assert.Throws<AsyncDiffusionException>(() => s.SetTimestepsForStrength(4, 0.2));
        Assert.Contains("no denoising step", e.Message);
    }

    [Fact]
    public void LcmRejectsMoreStepsThanItsSchedule()
    {
        var s = SchedulerRegistry.Create("LCM", SchedulerConfig.Parse(Sd15, "sd15"));
        var e = Assert.Throws<AsyncDiffusionException>(() => s.SetTimesteps(60));
        Assert.Contains("at most 50 steps", e.Message);
    }

    [Fact]
    public void UserOverridesAreTypeChecked()
    {
        var config = SchedulerConfig.Parse(Sd15, "sd15").WithText("timestep_spacing", "trailing").WithText("steps_offset", "0");
        var s = SchedulerRegistry.Create("Euler", config);
        s.SetTimesteps(4);
        Assert.Equal(new double[] { 999, 749, 499, 249 }, s.Timesteps);
        var e = Assert.Throws<AsyncDiffusionException>(() => config.WithText("use_karras_sigmas", "maybe"));
        Assert.Contains("use_karras_sigmas", e.Message);
        e = Assert.Throws<AsyncDiffusionException>(() => config.WithText("warp_speed", "9"));
        Assert.Contains("Unknown scheduler setting 'warp_speed'", e.Message);
    }

    [Fact]
    public void EachSchedulerInstanceKeepsItsOwnState()
    {
        // Two requests stepping alternately must get what each gets alone.
        var config = SchedulerConfig.Parse(Sd15, "sd15");
        float[] Run(Scheduler s, float seed, int steps, Action<int>? between = null)
        {
            s.SetTimesteps(steps);
            var x = Enumerable.Range(0, 16).Select(k => MathF.Sin(seed + k)).ToArray();
            var eps = new float[16];
            for (int i = 0; i < s.Timesteps.Count; i++)
            {
                for (int k = 0; k < 16; k++) eps[k] = 0.1f * x[k] + 0.01f * k;
                s.Step(eps, s.Timesteps[i], x);
                between?.Invoke(i);
            }
            return x;
        }
        var aloneA = Run(SchedulerRegistry.Create("DPM++ 2M", config), 1, 10);
        var aloneB = Run(SchedulerRegistry.Create("DPM++ 2M", config), 2, 10);
        var b = SchedulerRegistry.Create("DPM++ 2M", config);
        b.SetTimesteps(10);
        var xb = Enumerable.Range(0, 16).Select(k => MathF.Sin(2f + k)).ToArray();
        var epsB = new float[16];
        var interleavedA = Run(SchedulerRegistry.Create("DPM++ 2M", config), 1, 10, i =>
        {
            for (int k = 0; k < 16; k++) epsB[k] = 0.1f * xb[k] + 0.01f * k;
            b.Step(epsB, b.Timesteps[i], xb);
        });
        Assert.Equal(aloneA, interleavedA);
        Assert.Equal(aloneB, xb);
    }
}
