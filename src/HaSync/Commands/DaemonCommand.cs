using System.CommandLine;
using HaSync.Configuration;
using HaSync.Daemon;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Events;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync daemon</c>: on the active node, keeps every passive identical in real time (see <see cref="SyncDaemon"/>).
/// Runs in the foreground under the generic host (systemd starts it; SIGTERM stops it after a last push).
/// Logs go to stderr (journald) and, when the configuration names one, to a file.
/// </summary>
internal static class DaemonCommand
{
    /// <summary>How long SIGTERM may take: the pushers' drain timeout and a margin.</summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(20);

    public static Command Create()
    {
        var config = ResyncCommand.ConfigOption();
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log every pushed batch (debug level)" };
        var command = new Command("daemon", "Watch the configured paths and push every change to the passive nodes as it happens") { config, verbose };
        command.SetAction(async (r, cancellationToken) =>
        {
            HaSyncConfig loaded;
            DaemonLock running;
            try
            {
                loaded = ConfigLoader.Load(r.GetValue(config)!);
                if (ConfigCheck.LogFileProblem(loaded) is { } problem)
                    throw new ConfigException(problem);
                running = DaemonLock.Acquire(loaded);
            }
            catch (HaSyncException e)
            {
                Console.Error.WriteLine($"hasync daemon: {e.Message}");
                return 2;
            }
            using var held = running;
            using var serilog = CreateLogger(loaded, r.GetValue(verbose));
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Logging.ClearProviders().AddSerilog(serilog);
            builder.Services.AddSingleton(loaded);
            builder.Services.AddHostedService<DaemonService>();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
            using var host = builder.Build();
            await host.RunAsync(cancellationToken);
            return 0;
        });
        return command;
    }

    internal static Serilog.Core.Logger CreateLogger(HaSyncConfig config, bool verbose)
    {
        const string Template = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}";
        var logger = new LoggerConfiguration()
            .MinimumLevel.Is(verbose ? LogEventLevel.Debug : LogEventLevel.Information)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .WriteTo.Console(outputTemplate: Template, standardErrorFromLevel: LogEventLevel.Verbose);
        if (config.Daemon.LogFile is { } file)
            logger = logger.WriteTo.File(file, outputTemplate: Template);
        return logger.CreateLogger();
    }

    /// <summary>The daemon as a hosted service. SIGHUP (systemctl reload, hasync resolve) retries what waits now.</summary>
    private sealed class DaemonService(HaSyncConfig config, ILogger<SyncDaemon> log) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var daemon = new SyncDaemon(config, log, TimeProvider.System);
            using var hangup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, signal =>
            {
                signal.Cancel = true; // not the default action (terminate)
                daemon.RetryNow();
            });
            await daemon.RunAsync(stoppingToken);
        }
    }
}
