using AsyncDiffusion.Engine;

namespace AsyncDiffusion.Server.Http;

/// <summary>
/// At most as many API requests with a body are read, decoded and worked on at once as the
/// engine admits jobs; others get 429 before their body is read. With the engine's own
/// admission this bounds memory by the configured limits (queue length × largest request),
/// whatever the number of connections.
/// </summary>
public sealed class RequestSlots(int slots)
{
    private readonly SemaphoreSlim _free = new(slots, slots);

    public async Task Gate(HttpContext ctx, Func<Task> next)
    {
        var request = ctx.Request;
        bool hasBody = request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0;
        if (!hasBody || !ContentTypes.IsApi(request.Path.Value ?? ""))
        {
            await next();
            return;
        }
        if (!_free.Wait(0)) throw new QueueFullException(slots, TimeSpan.FromSeconds(1));
        try
        {
            await next();
        }
        finally
        {
            _free.Release();
        }
    }
}
