using System.Threading.Channels;
using HaSync.Configuration;
using HaSync.Guard;
using HaSync.Scanning;
using HaSync.Watching;
using Microsoft.Extensions.Logging;

namespace HaSync.Daemon;

/// <summary>
/// <c>hasync daemon</c>'s work, in the one direction data flows: the inotify watcher feeds the change
/// aggregator; each ready batch goes to every target's pusher, which scans it, pushes it and applies nothing
/// itself (the agent on the passive does). The watcher starts before the start-up resyncs, so changes made
/// while they run are caught. On stop: watching ends, what the aggregator holds is handed over at once, each
/// pusher sends it (within its drain timeout), and the last status says the daemon stopped. The role monitor
/// decides whether the node is active; the pushers push only while it is (see <see cref="RoleMonitor"/>).
/// </summary>
public sealed class SyncDaemon(HaSyncConfig config, ILogger log, TimeProvider clock, PusherOptions? pusherOptions = null)
{
    private static readonly TimeSpan StatusInterval = TimeSpan.FromSeconds(1);
    private readonly ChangeAggregator _aggregator = new(clock, new AggregatorOptions { QuietWindow = config.Daemon.QuietWindow, MaxDelay = config.Daemon.MaxDelay });
    private readonly DateTimeOffset _started = clock.GetUtcNow();
    private volatile int _aggregating;
    private volatile RoleMonitor? _role;
    private volatile List<TargetPusher> _pushers = [];
    private bool _statusFailing; // logged once, not every second

    /// <summary>Runs until <paramref name="stop"/>, then flushes and returns.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var events = Channel.CreateUnbounded<WatchEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var watcher = new InotifyWatcher(config.SourceRoot, config.Paths, new PathFilter(config.Exclude), events.Writer, log);
        watcher.Start();
        string listed = string.Join(", ", config.Paths);
        log.Watching(listed, config.SourceRoot, watcher.WatchCount);
        foreach (string warning in ConfigCheck.Warnings(config))
            log.ConfigWarning(warning);

        // Kept across restarts: a daemon restarted on a large watched set does not read it all again.
        string cachePath = HashCache.ActiveFile(config.StateDirectory);
        var cache = HashCache.Load(cachePath, log.HashCacheProblem);
        var options = pusherOptions ?? new PusherOptions();
        options = options with { AuditInterval = config.Daemon.AuditInterval ?? options.AuditInterval, SelfCheckAfter = config.Daemon.SelfCheckAfter };
        using var role = new RoleMonitor(config, new EpochStore(config.StateDirectory), log, clock);
        var pushers = config.Targets.Select(t => new TargetPusher(config, t, cache, role, log, clock, options)).ToList();
        (_role, _pushers) = (role, pushers);
        using var stopPushers = new CancellationTokenSource();
        var checking = Task.Run(() => role.RunAsync(stopPushers.Token), CancellationToken.None);
        var pushing = pushers.Select(p => Task.Run(() => p.RunAsync(stopPushers.Token), CancellationToken.None)).ToList();
        using var stopStatus = new CancellationTokenSource();
        var reporting = ReportAsync(watcher, role, pushers, stopStatus.Token);

        await AggregateAsync(events.Reader, pushers, stop).ConfigureAwait(false);

        watcher.Dispose();
        while (events.Reader.TryRead(out var e))
            _aggregator.Add(e);
        var last = _aggregator.TakeAll();
        log.Stopping(last.FullScan ? 1 : last.Paths.Count, options.DrainTimeout.TotalSeconds);
        foreach (var pusher in pushers)
            pusher.Enqueue(last);
        await stopPushers.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(pushing).ConfigureAwait(false);
        await checking.ConfigureAwait(false);
        await stopStatus.CancelAsync().ConfigureAwait(false);
        await reporting.ConfigureAwait(false);
        WriteStatus(watcher, role, pushers, stopped: true);
        foreach (var pusher in pushers)
            pusher.Dispose();
        cache.SaveIfChanged(cachePath, log.HashCacheProblem);
    }

    /// <summary>Checks the role and retries every failed path and conflict now (SIGHUP: an admin settled something).</summary>
    public void RetryNow()
    {
        log.RetryingNow();
        if (_role is { } role)
            _ = Task.Run(() => role.CheckNowAsync(CancellationToken.None));
        foreach (var pusher in _pushers)
            pusher.RetryNow();
    }

    private async Task AggregateAsync(ChannelReader<WatchEvent> events, List<TargetPusher> pushers, CancellationToken stop)
    {
        Task<bool>? waiting = null;
        // One timer for the soonest due time, not one per wake-up: in a burst the loop wakes for nearly every event.
        Task? timer = null;
        var timerAt = DateTimeOffset.MaxValue;
        while (!stop.IsCancellationRequested)
        {
            waiting ??= events.WaitToReadAsync(stop).AsTask();
            var due = _aggregator.NextReadyIn();
            try
            {
                if (due is { } delay)
                {
                    var at = clock.GetUtcNow() + delay;
                    if (timer is null || timer.IsCompleted || at < timerAt)
                        (timer, timerAt) = (Task.Delay(delay, clock, stop), at);
                    await Task.WhenAny(waiting, timer).ConfigureAwait(false);
                }
                else
                    await waiting.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (waiting.IsCompleted)
                waiting = null;
            var now = clock.GetUtcNow();
            while (events.TryRead(out var e))
                _aggregator.Add(e, now);
            while (_aggregator.TakeReady() is { } batch)
                foreach (var pusher in pushers)
                    pusher.Enqueue(batch);
            _aggregating = _aggregator.Count;
        }
    }

    private async Task ReportAsync(InotifyWatcher watcher, RoleMonitor role, List<TargetPusher> pushers, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            WriteStatus(watcher, role, pushers, stopped: false);
            try
            {
                await Task.Delay(StatusInterval, clock, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void WriteStatus(InotifyWatcher watcher, RoleMonitor role, List<TargetPusher> pushers, bool stopped)
    {
        var snapshot = new DaemonSnapshot
        {
            Pid = Environment.ProcessId,
            Config = Path.GetFullPath(config.Source),
            Started = _started,
            Updated = clock.GetUtcNow(),
            Stopped = stopped,
            Watches = watcher.WatchCount,
            WatchProblems = watcher.Problems,
            MissingPaths = ConfigCheck.MissingPaths(config),
            Aggregating = _aggregating,
            Role = role.Status,
            Targets = pushers.Select(p => p.Status).ToList(),
        };
        try
        {
            StatusFile.Write(config.StatusFile, snapshot);
            _statusFailing = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!_statusFailing)
                log.StatusNotWritten(config.StatusFile, e.Message);
            _statusFailing = true;
        }
    }
}
