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
    public void SwitchingSchedulerTakesOnlyTheKeysTheModelFileSetsLikeFromConfig()
    {
        // SD 1.5's file sets steps_offset = 1 but no timestep_spacing: diffusers' from_config drops
        // the PNDM defaults it filled in (_use_default_values), so Euler a runs with its own "linspace".
        var config = SchedulerConfig.Parse(Sd15, "sd15");
        var eulerA = SchedulerRegistry.Create("Euler a", config);
        eulerA.SetTimesteps(4);
        Assert.IsType<EulerAncestralDiscreteScheduler>(eulerA);
        Assert.Equal(new double[] { 999, 666, 333, 0 }, eulerA.Timesteps);

        // A file that states its spacing hands it on, with its steps_offset.
        var stated = SchedulerConfig.Parse(Sd15.Replace("\"steps_offset\": 1,", "\"steps_offset\": 1, \"timestep_spacing\": \"leading\","), "sd15 with spacing");
        var leading = SchedulerRegistry.Create("Euler a", stated);
        leading.SetTimesteps(4);
        Assert.Equal(new double[] { 751, 501, 251, 1 }, leading.Timesteps);

        // The file's betas are inherited either way (Euler a's own default is linear 0.0001..0.02).
        Assert.Equal(SchedulerRegistry.CreateDefault(config).Table.AlphasCumprod, eulerA.Table.AlphasCumprod);
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
    [InlineData("Heun", typeof(HeunDiscreteScheduler))]
    [InlineData("DPM2 a Karras", typeof(KDpm2AncestralDiscreteScheduler))]
    [InlineData("k_dpm_2", typeof(KDpm2DiscreteScheduler))]
    [InlineData("DPM++ 2M SDE Karras", typeof(DpmSolverMultistepScheduler))]
    [InlineData("dpmpp_3m_sde_exponential", typeof(DpmSolverMultistepScheduler))]
    [InlineData("DPM++ 2S a Karras", typeof(DpmSolverSinglestepScheduler))]
    [InlineData("DPM++ SDE", typeof(DpmSolverSinglestepScheduler))]
    [InlineData("UniPC", typeof(UniPcMultistepScheduler))]
    [InlineData("DEIS Beta", typeof(DeisMultistepScheduler))]
    [InlineData("Euler SGM Uniform", typeof(EulerDiscreteScheduler))]
    [InlineData("TCDScheduler", typeof(TcdScheduler))]
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
        Assert.Contains("DPM++ 2M SDE", e.Message);
        Assert.Contains("Karras", e.Message);
    }

    [Fact]
    public void AScheduleTypeTheSamplerLacksNamesWhatItTakes()
    {
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.Create("Euler a Karras", SchedulerConfig.Parse(Sd15, "sd15")));
        Assert.Contains("'Euler a' has no schedule type 'Karras'", e.Message);
        Assert.Contains("Automatic, Uniform, SGM Uniform, Simple", e.Message);

        e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.Resolve("DPM++ 2M", "Align Your Steps"));
        Assert.Contains("Unknown schedule type 'Align Your Steps'", e.Message);
        Assert.Contains("Exponential", e.Message);
        e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.Resolve("LCM", "Beta"));
        Assert.Contains("'LCM' has no schedule type 'Beta'", e.Message);
    }

    [Fact]
    public void SeparateSamplerAndScheduleTypeMeanTheCombinedName()
    {
        var separate = SchedulerRegistry.Resolve("DPM++ 2M SDE", "Exponential");
        var combined = SchedulerRegistry.Resolve("DPM++ 2M SDE Exponential");
        Assert.Equal("DPM++ 2M SDE Exponential", separate.Name);
        Assert.Equal(combined.Name, separate.Name);
        Assert.Equal(combined.Overrides, separate.Overrides);
        Assert.Equal("sde-dpmsolver++", separate.Overrides["algorithm_type"]);
        Assert.Equal(true, separate.Overrides["use_exponential_sigmas"]);
        Assert.Same(SchedulerRegistry.Resolve("Euler"), SchedulerRegistry.Resolve("Euler", "Automatic"));
    }

    [Fact]
    public void EverySamplerRunsWithEveryScheduleTypeItLists()
    {
        var config = SchedulerConfig.Parse(Sd15, "sd15");
        foreach (var sampler in SchedulerRegistry.Entries)
            foreach (var type in SchedulerRegistry.ScheduleTypesFor(sampler))
            {
                var entry = SchedulerRegistry.Resolve(sampler.Name, type.Label);
                var s = SchedulerRegistry.Create(entry.Name, config);
                if (s is IEtaScheduler stochastic) stochastic.Eta = 0.3;
                s.SetTimesteps(4);
                var x = Enumerable.Range(0, 16).Select(k => MathF.Sin(k) * (float)s.InitNoiseSigma).ToArray();
                var scaled = new float[16];
                var eps = new float[16];
                foreach (var t in s.Timesteps)
                {
                    s.ScaleModelInput(x, t, scaled);
                    for (int k = 0; k < 16; k++) eps[k] = 0.1f * scaled[k] + 0.01f * k;
                    s.Step(eps, t, x, z => z.Fill(0.5f));
                }
                Assert.True(x.All(float.IsFinite), $"{entry.Name}: the latents are not finite after {s.Timesteps.Count} calls");
            }
    }

    [Fact]
    public void MultiCallSchedulersListEveryModelCallAsATimestep()
    {
        var config = SchedulerConfig.Parse(Sd15, "sd15");
        foreach (var name in new[] { "Heun", "DPM2", "DPM2 a" })
        {
            var s = SchedulerRegistry.Create(name, config);
            s.SetTimesteps(4);
            Assert.Equal(7, s.Timesteps.Count); // 2n − 1 model calls
            Assert.Equal(2, s.Order);
            var img2img = SchedulerRegistry.Create(name, config);
            Assert.Equal(4, img2img.SetTimestepsForStrength(4, 0.5)); // two solver steps skipped = four calls
            Assert.Equal(4, img2img.BeginIndex);
        }
    }

    [Fact]
    public void UniPcBh1WithAZeroFinalSigmaIsRefused()
    {
        var config = SchedulerConfig.Parse(Sd15, "sd15").WithText("solver_type", "bh1");
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.Create("UniPC bh2", config));
        Assert.Contains("final_sigmas_type is \"zero\" with solver_type \"bh1\"", e.Message);
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
        var config = SchedulerConfig.Parse("""{"_class_name": "DPMSolverSDEScheduler"}""", "cfg.json");
        var e = Assert.Throws<AsyncDiffusionException>(() => SchedulerRegistry.CreateDefault(config));
        Assert.Contains("DPMSolverSDEScheduler", e.Message);
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
