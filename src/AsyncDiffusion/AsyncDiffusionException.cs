namespace AsyncDiffusion;

/// <summary>
/// Bad input (a request, file, config or option): the base of the library's own exceptions.
/// Its message always says what was wrong and what is expected, so front ends can show it as it
/// is instead of a stack trace. The subclasses say which other kind of failure it is; anything
/// else the library lets through (an ONNX Runtime error, a bug) is an internal failure.
/// </summary>
public class AsyncDiffusionException : Exception
{
    public AsyncDiffusionException(string message) : base(message) { }
    public AsyncDiffusionException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// A model folder (or model file) that cannot be used: missing parts, an unreadable or
/// mismatched component. Its message names files on the machine that loads the model, so
/// servers log it rather than send it to clients.
/// </summary>
public class ModelFolderException : AsyncDiffusionException
{
    public ModelFolderException(string message) : base(message) { }
    public ModelFolderException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A request refused for lack of room (a full queue, a body or image above a limit), not because it is wrong.</summary>
public class ResourceLimitException : AsyncDiffusionException
{
    public ResourceLimitException(string message) : base(message) { }
}

/// <summary>
/// A valid request that failed while it ran (a model producing NaN, say). The message is safe
/// to show; it is not the client's fault, so servers answer it as an internal failure.
/// </summary>
public class GenerationFailedException : AsyncDiffusionException
{
    public GenerationFailedException(string message) : base(message) { }
    public GenerationFailedException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Short ids that tie an internal failure's client message to its log line; an exception keeps the id it was first given.</summary>
public static class ErrorIds
{
    private const string Key = "asyncdiffusion.error_id";

    public static string Of(Exception error)
    {
        if (error.Data[Key] is string id) return id;
        id = Guid.NewGuid().ToString("N")[..8];
        error.Data[Key] = id;
        return id;
    }
}
