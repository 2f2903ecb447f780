namespace AsyncDiffusion.Models;

/// <summary>
/// A second session of a component with a rewritten graph (circular padding for seamless
/// tiling, clip-skip outputs), built on first use so that models nobody asks this of pay
/// nothing; disposed with the component that owns it. A failure to build it is remembered and
/// rethrown to every later request (the graph will not change).
/// </summary>
public sealed class LazyVariant<T>(Func<T> create) : IDisposable where T : class, IDisposable
{
    private readonly Lazy<T> _value = new(create, LazyThreadSafetyMode.ExecutionAndPublication);

    public T Value => _value.Value;

    public bool IsCreated => _value.IsValueCreated;

    public void Dispose()
    {
        if (_value.IsValueCreated) _value.Value.Dispose();
    }
}
