namespace AsyncDiffusion;

/// <summary>
/// The one exception type the library throws for bad input (files, configs, options).
/// Its message always says what was wrong and what is expected, so front ends can show it
/// as it is instead of a stack trace.
/// </summary>
public class AsyncDiffusionException : Exception
{
    public AsyncDiffusionException(string message) : base(message) { }
    public AsyncDiffusionException(string message, Exception inner) : base(message, inner) { }
}
