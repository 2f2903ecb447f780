using AsyncDiffusion.Engine;

namespace AsyncDiffusion.Tests.Engine;

public class EngineOptionsTests
{
    [Fact]
    public void OnASmallMachineTheDefaultIsOneStreamWithAllThreadsSpinningAndHeavyCallsTakingTurns()
    {
        var options = EngineOptions.Automatic(cores: 2);
        Assert.Equal(EngineMode.Async, options.Mode);
        Assert.Equal(1, options.Streams);
        Assert.Equal(1, options.MaxBatch); // a second image per call measured slower per row on 2 cores
        Assert.True(options.ExclusiveCompute);
        var session = DiffusionEngine.SessionSettingsFor(options);
        Assert.Equal(2, session.IntraOpThreads);
        Assert.True(session.AllowSpinning);
        Assert.Contains("2 core", options.Rationale);
    }

    [Theory]
    [InlineData(8, 2, 4)]
    [InlineData(16, 4, 4)]
    public void OnLargerMachinesTheDefaultRunsAStreamPerFourCores(int cores, int streams, int threads)
    {
        var options = EngineOptions.Automatic(cores);
        Assert.Equal(streams, options.Streams);
        Assert.Equal(threads, DiffusionEngine.SessionSettingsFor(options).IntraOpThreads);
    }

    [Fact]
    public void ATunedConfigurationWinsAndSaysSo()
    {
        var tuned = new TunedConfig(3, 4, 6, 10_000, 12.5, 9000, "sd15", "256x256", 8, "test machine", DateTime.UtcNow);
        var options = EngineOptions.Automatic(16, tuned);
        Assert.Equal((3, 4), (options.Streams, options.MaxBatch));
        Assert.StartsWith("tuned on this machine", options.Rationale);
    }

    [Fact]
    public void ATunedChoiceOfOverlappingCallsSurvivesTheFileAndOlderFilesMeanTurns()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "tuned.json");
        new TunedConfig(1, 2, 2, 10_000, 5, 9000, "sd15", "256x256", 8, "test machine", DateTime.UtcNow, ExclusiveCompute: false).Save(path);
        var options = EngineOptions.Automatic(2, TunedConfig.Load(path));
        Assert.False(options.ExclusiveCompute);
        Assert.Contains("overlapping", options.Rationale);

        File.WriteAllText(path, File.ReadAllText(path).Replace("\"exclusive_compute\": false,", "").Replace(",\n  \"exclusive_compute\": false", ""));
        Assert.DoesNotContain("exclusive_compute", File.ReadAllText(path));
        Assert.True(EngineOptions.Automatic(2, TunedConfig.Load(path)).ExclusiveCompute);
    }

    [Fact]
    public void WithoutTurnsOverlappingCallsDoNotSpin()
    {
        var options = new EngineOptions { Streams = 2, Threads = 4, ExclusiveCompute = false };
        Assert.False(DiffusionEngine.SessionSettingsFor(options).AllowSpinning);
        Assert.Equal(2, DiffusionEngine.SessionSettingsFor(options).IntraOpThreads);
    }
}
