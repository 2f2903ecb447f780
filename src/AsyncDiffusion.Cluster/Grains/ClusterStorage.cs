namespace AsyncDiffusion.Cluster.Grains;

/// <summary>The grain storage that holds job records and the queue (Redis in a real cluster).</summary>
public static class ClusterStorage
{
    public const string Name = "asyncdiffusion-jobs";
}
