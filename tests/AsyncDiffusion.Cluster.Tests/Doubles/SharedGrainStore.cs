using System.Collections.Concurrent;
using AsyncDiffusion.Cluster.Contracts;
using AsyncDiffusion.Cluster.Grains;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Storage;

namespace AsyncDiffusion.Cluster.Tests.Doubles;

/// <summary>
/// The durable store of the in-process cluster (Redis' role): shared by all silos of the test,
/// so it outlives any killed silo. Stores copies with ETags, like a real store, and counts how
/// often each job was written as succeeded (a result committed twice would show here).
/// </summary>
public sealed class SharedGrainStore
{
    private readonly ConcurrentDictionary<string, (object State, string ETag)> _records = new();
    private readonly ConcurrentDictionary<string, int> _succeededWrites = new();

    public int SucceededWrites(string jobId) => _succeededWrites.GetValueOrDefault(jobId);

    public IGrainStorage For(DeepCopier copier) => new Storage(this, copier);

    private sealed class Storage(SharedGrainStore store, DeepCopier copier) : IGrainStorage
    {
        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            if (store._records.TryGetValue(Key(stateName, grainId), out var record))
            {
                grainState.State = copier.Copy((T)record.State);
                grainState.ETag = record.ETag;
                grainState.RecordExists = true;
            }
            return Task.CompletedTask;
        }

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            string key = Key(stateName, grainId);
            string etag = Guid.NewGuid().ToString("N");
            lock (store)
            {
                if (store._records.TryGetValue(key, out var current) && current.ETag != grainState.ETag)
                    throw new InconsistentStateException($"ETag mismatch for {key}", current.ETag, grainState.ETag ?? "");
                store._records[key] = (copier.Copy(grainState.State)!, etag);
                if (grainState.State is JobRecord { Status: ClusterJobStatus.Succeeded } && !(current.State is JobRecord { Status: ClusterJobStatus.Succeeded }))
                    store._succeededWrites.AddOrUpdate(grainId.Key.ToString()!, 1, (_, n) => n + 1);
            }
            grainState.ETag = etag;
            grainState.RecordExists = true;
            return Task.CompletedTask;
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            store._records.TryRemove(Key(stateName, grainId), out _);
            grainState.ETag = null;
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }

        private static string Key(string stateName, GrainId grainId) => $"{stateName}/{grainId}";
    }
}
