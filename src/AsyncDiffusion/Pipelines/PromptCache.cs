using AsyncDiffusion.Models;
using AsyncDiffusion.Pipelines;

namespace AsyncDiffusion.Pipelines;

/// <summary>
/// Text-encoder outputs of recent prompts (least recently used dropped first): servers see the
/// same prompts and, above all, the same negative prompts again and again. Misses of one
/// request are encoded in one batch. Thread-safe.
/// </summary>
public sealed class PromptCache(ModelFolder model, int capacity)
{
    private readonly Dictionary<string, LinkedListNode<(string Key, float[] States)>> _index = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, float[] States)> _order = new();
    private readonly object _lock = new();

    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// <param name="prompt">The prompt.</param>
    /// <param name="negative">The negative prompt (encoded only with guidance).</param>
    /// <param name="guidance">Whether the unconditional states are needed.</param>
    /// <param name="clipSkip">Which layer's states (see <see cref="TextEncoder.Encode"/>); part of the cache key.</param>
    /// <param name="timings">Where tokenizing and encoding times are added.</param>
    /// <param name="cancellation">Cancels the encoding.</param>
    public PromptEmbeddings Encode(string prompt, string negative, bool guidance, int clipSkip, StageTimings timings, CancellationToken cancellation)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var texts = guidance ? new[] { negative, prompt } : [prompt];
        // The states of one text differ between clip skips: the cache keys carry it.
        var keys = texts.Select(t => clipSkip <= 1 ? t : $"{t}\u0000clip skip {clipSkip}").ToArray();
        var tokenized = texts.Select(model.Tokenizer.Encode).ToArray();
        timings.TokenizeMs += clock.Elapsed.TotalMilliseconds;

        var states = new float[texts.Length][];
        var missing = new List<int>();
        lock (_lock)
        {
            for (int i = 0; i < texts.Length; i++)
            {
                if (capacity > 0 && _index.TryGetValue(keys[i], out var node))
                {
                    _order.Remove(node);
                    _order.AddFirst(node);
                    states[i] = node.Value.States;
                    Hits++;
                }
                else
                {
                    missing.Add(i);
                    Misses++;
                }
            }
        }
        if (missing.Count > 0)
        {
            clock.Restart();
            var ids = missing.SelectMany(i => tokenized[i].InputIds).ToArray();
            var encoded = model.TextEncoder.Encode(ids, missing.Count, clipSkip, cancellation);
            int size = encoded.Length / missing.Count;
            timings.TextEncodeMs += clock.Elapsed.TotalMilliseconds;
            for (int m = 0; m < missing.Count; m++)
            {
                states[missing[m]] = encoded[(m * size)..((m + 1) * size)];
                Add(keys[missing[m]], states[missing[m]]);
            }
        }
        int tokens = tokenized[0].InputIds.Length;
        return guidance
            ? new PromptEmbeddings(states[1], states[0], tokens, model.TextEncoder.HiddenSize, tokenized[1], tokenized[0])
            : new PromptEmbeddings(states[0], null, tokens, model.TextEncoder.HiddenSize, tokenized[0], null);
    }

    private void Add(string key, float[] states)
    {
        if (capacity <= 0) return;
        lock (_lock)
        {
            if (_index.ContainsKey(key)) return;
            _index[key] = _order.AddFirst((key, states));
            while (_order.Count > capacity)
            {
                _index.Remove(_order.Last!.Value.Key);
                _order.RemoveLast();
            }
        }
    }
}
