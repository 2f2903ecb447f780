using AsyncDiffusion.Engine;
using AsyncDiffusion.Pipelines;
using AsyncDiffusion.Server;
using AsyncDiffusion.Server.Catalog;
using AsyncDiffusion.Server.Configuration;
using AsyncDiffusion.Tests.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AsyncDiffusion.Tests.Server;

/// <summary>A real server on a loopback port with the tiny synthetic model.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    public HttpClient Client { get; }
    public Uri BaseAddress { get; }

    private TestServer(WebApplication app, Uri address)
    {
        _app = app;
        BaseAddress = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(120) };
    }

    public static async Task<TestServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null, Action<Microsoft.Extensions.Logging.ILoggingBuilder>? logging = null,
        Func<string, DiffusionEngine>? openModel = null)
    {
        var options = new ServerOptions
        {
            Models = [TinyModels.Folder("optimum")],
            Urls = "http://127.0.0.1:0",
            Engine = new EngineOptions { Streams = 1, MaxBatch = 4, MaxJobs = 16 },
            Limits = new GenerationLimits { MaxSteps = 100, MaxWidth = 256, MaxHeight = 256, MaxCount = 4 },
        };
        if (configure is not null) options = configure(options);
        var app = ServerApp.Build(options, logging: logging, openModel: openModel);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestServer(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
