using System.CommandLine;
using HaSync.Cli.Logging;
using HaSync.Configuration;
using HaSync.Daemon;
using Microsoft.Extensions.Logging;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync daemon</c>: on the active node, keeps every passive identical in real time (see <see cref="SyncDaemon"/>).
/// Runs in the foreground (systemd starts it; SIGTERM or SIGINT cancels the command's token, and the daemon stops after a
/// last push: Program.cs gives it <see cref="ShutdownTimeout"/> for that).
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
            using var logs = CreateLogger(loaded, r.GetValue(verbose));
            var daemon = new SyncDaemon(loaded, logs.CreateLogger(typeof(SyncDaemon).FullName!), TimeProvider.System);
            // SIGHUP (systemctl reload, hasync resolve) retries what waits now, instead of its default action (terminate).
            using var hangup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, signal =>
            {
                signal.Cancel = true;
                daemon.RetryNow();
            });
            await daemon.RunAsync(cancellationToken);
            return 0;
        });
        return command;
    }

    /// <summary>The daemon's log (stderr, and the configuration's log file).</summary>
    internal static LineLoggerProvider CreateLogger(HaSyncConfig config, bool verbose) =>
        new(verbose ? LogLevel.Debug : LogLevel.Information, config.Daemon.LogFile);
}
