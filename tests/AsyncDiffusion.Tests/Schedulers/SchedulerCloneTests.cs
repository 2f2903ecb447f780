using AsyncDiffusion.Randomness;
using AsyncDiffusion.Schedulers;

namespace AsyncDiffusion.Tests.Schedulers;

/// <summary>
/// A request's schedule is computed once and each image runs on a copy (<see cref="Scheduler.CloneForRun"/>):
/// copies must share nothing that changes while stepping.
/// </summary>
public class SchedulerCloneTests
{
    public static TheoryData<string> Names => new(SchedulerRegistry.Names);

    [Theory]
    [MemberData(nameof(Names))]
    public void InterleavedCopiesStepExactlyLikeOneSchedulerAlone(string name)
    {
        var config = SchedulerConfig.Parse(AsyncDiffusion.Models.Synthetic.SyntheticPreset.Sd15.SchedulerConfigJson, "sd15");
        var configured = SchedulerRegistry.Create(name, config);
        configured.SetTimesteps(6);

        float[] alone = Run([configured.CloneForRun()], seeds: [7])[0];
        var both = Run([configured.CloneForRun(), configured.CloneForRun()], seeds: [7, 8]);
        Assert.Equal(alone, both[0]);
        Assert.NotEqual(both[0], both[1]);
    }

    // Steps every scheduler in turn, one step each, with a model output that depends on the sample.
    private static float[][] Run(Scheduler[] schedulers, ulong[] seeds)
    {
        var samples = seeds.Select(s =>
        {
            var x = new float[16];
            NoiseGenerators.Create(NoiseGeneratorKind.Torch, s).NextGaussian(x);
            return x;
        }).ToArray();
        var noise = seeds.Select(s => NoiseGenerators.Create(NoiseGeneratorKind.Torch, s + 100)).ToArray();
        int steps = schedulers[0].Timesteps.Count;
        for (int k = 0; k < steps; k++)
            for (int i = 0; i < schedulers.Length; i++)
            {
                double t = schedulers[i].Timesteps[k];
                var input = new float[16];
                schedulers[i].ScaleModelInput(samples[i], t, input);
                var output = input.Select(v => 0.3f * v + (float)(t / 1000)).ToArray();
                schedulers[i].Step(output, t, samples[i], noise[i].NextGaussian);
            }
        return samples;
    }
}
