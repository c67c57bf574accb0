using System.Diagnostics;
using HaSync.Configuration;
using HaSync.Guard;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Transport;
using HaSync.Watching;
using Microsoft.Extensions.Logging;

namespace HaSync.Daemon;

/// <summary>One target's health, as <c>hasync status</c> and <c>hasync check</c> show it.</summary>
public sealed record TargetStatus
{
    /// <summary>The target's name.</summary>
    public required string Name { get; init; }
    /// <summary>A session is up and its start-up resync is done.</summary>
    public bool Connected { get; init; }
    /// <summary>Since when <see cref="Connected"/> has held its value.</summary>
    public DateTimeOffset Since { get; init; }
    /// <summary>When the passive last acknowledged a resync or a batch.</summary>
    public DateTimeOffset? LastSuccess { get; init; }
    /// <summary>Paths waiting to be pushed (or retried); a pending full scan counts as one.</summary>
    public int Queue { get; init; }
    /// <summary>When the oldest change not yet on the passive happened; null when the passive is current.</summary>
    public DateTimeOffset? OldestPending { get; init; }
    /// <summary>Files, directories and links written and deleted on the passive since start.</summary>
    public long Pushed { get; init; }
    /// <summary>Resyncs done since start (the start-up one, one per reconnect, audits).</summary>
    public int Resyncs { get; init; }
    /// <summary>The last failure, naming the path or the session and the cause.</summary>
    public string? LastError { get; init; }
    /// <summary>When <see cref="LastError"/> happened.</summary>
    public DateTimeOffset? LastErrorAt { get; init; }
    /// <summary>The agent's process (ssh, or the local agent) while connected.</summary>
    public int? AgentPid { get; init; }
    /// <summary>The passive refused this node's epoch: it has accepted a later active's since.</summary>
    public bool Fenced { get; init; }
    /// <summary>Paths the passive changed on its own and kept: each needs an admin (<c>hasync resolve</c>).</summary>
    public IReadOnlyList<ConflictStatus> Conflicts { get; init; } = [];
}

/// <summary>A path the passive refused to overwrite because it changed it on its own.</summary>
public sealed record ConflictStatus(string Path, string Message, DateTimeOffset Since);

/// <summary>Timing of a <see cref="TargetPusher"/>.</summary>
public sealed record PusherOptions
{
    /// <summary>First wait before reconnecting; doubles each time, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Longest wait between reconnect attempts.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>First wait before a path that failed is tried again; doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Longest wait before a failed path is tried again.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>A full compare against the passive's manifest this often (null: never).</summary>
    public TimeSpan? AuditInterval { get; init; }
    /// <summary>How long the last push may take when the daemon stops.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Keeps one target current: one long-lived agent session (ssh started once, not per batch), a start-up
/// resync, then batches of dirty paths scanned and pushed with many files in flight. If the session dies it
/// reconnects with doubling backoff and resyncs; changes made meanwhile wait in the dirty set, so none is
/// lost. Paths that fail (unreadable on the active, refused by the passive) are tried again later. Each
/// target has its own pusher, so a slow or dead one holds back no other.
/// </summary>
public sealed class TargetPusher : IDisposable
{
    private readonly HaSyncConfig _config;
    private readonly TargetConfig _target;
    private readonly ChangeScanner _scanner;
    private readonly HashCache _cache;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private readonly PusherOptions _options;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Lock _lock = new();
    // Guarded by _lock:
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private bool _dirtyFullScan;
    private DateTimeOffset? _dirtySince;
    private readonly Dictionary<string, Retry> _retries = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, ConflictStatus> _conflicts = new(StringComparer.Ordinal);
    private bool _standby = true; // not active: changes are not queued (becoming active starts with a resync)
    private TargetStatus _status;
    private readonly RoleMonitor _role;

    private sealed record Retry(int Attempts, DateTimeOffset Due, DateTimeOffset Since);

    /// <summary>A pusher for <paramref name="target"/>; nothing happens until <see cref="RunAsync"/>.</summary>
    public TargetPusher(HaSyncConfig config, TargetConfig target, HashCache cache, RoleMonitor role, ILogger log, TimeProvider clock, PusherOptions? options = null)
    {
        _role = role;
        _config = config;
        _target = target;
        _cache = cache;
        _scanner = new ChangeScanner(config, cache);
        _log = log;
        _clock = clock;
        _options = options ?? new PusherOptions();
        _status = new TargetStatus { Name = target.Name, Since = clock.GetUtcNow() };
    }

    /// <summary>The target's name.</summary>
    public string Name => _target.Name;

    /// <summary>Health now.</summary>
    public TargetStatus Status
    {
        get
        {
            lock (_lock)
            {
                DateTimeOffset? oldest = _status.OldestPending;
                foreach (var since in _retries.Values.Select(r => r.Since).Append(_dirtySince ?? DateTimeOffset.MaxValue))
                    if (since != DateTimeOffset.MaxValue && (oldest is null || since < oldest))
                        oldest = since;
                int queued = (_dirtyFullScan ? 1 : _dirty.Count) + _retries.Keys.Count(k => !_dirty.Contains(k) && !_conflicts.ContainsKey(k));
                return _status with { Queue = queued, OldestPending = oldest, Conflicts = [.. _conflicts.Values] };
            }
        }
    }

    /// <summary>Queues a batch from the aggregator.</summary>
    public void Enqueue(ChangeBatch batch)
    {
        if (batch.IsEmpty)
            return;
        lock (_lock)
        {
            if (_standby)
                return;
            if (batch.FullScan)
                _dirtyFullScan = true;
            else
                _dirty.UnionWith(batch.Paths);
            if (_dirtySince is null || batch.OldestEvent < _dirtySince)
                _dirtySince = batch.OldestEvent;
        }
        Wake();
    }

    /// <summary>Makes every retry (conflicts included) due now: after an admin settled something (SIGHUP, hasync resolve).</summary>
    public void RetryNow()
    {
        lock (_lock)
            foreach (var (path, retry) in _retries.ToList())
                _retries[path] = retry with { Due = _clock.GetUtcNow() };
        Wake();
    }

    private void Wake()
    {
        lock (_wake)
            if (_wake.CurrentCount == 0)
                _wake.Release();
    }

    /// <summary>While the node is active: connects, resyncs and pushes until <paramref name="stop"/>, then pushes what is
    /// queued (within the drain timeout) and closes the session. While it is not: no session, nothing queued.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            ActiveTerm term;
            try
            {
                term = await _role.WaitActiveAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            lock (_lock)
                _standby = false;
            await ServeTermAsync(term, stop).ConfigureAwait(false);
            if (!stop.IsCancellationRequested)
                StandBy();
        }
    }

    /// <summary>Not active any more: what was queued is dropped (the next term starts with a resync) and the lag is nil.</summary>
    private void StandBy()
    {
        lock (_lock)
        {
            _standby = true;
            _dirty.Clear();
            _dirtyFullScan = false;
            _dirtySince = null;
            _retries.Clear();
            _conflicts.Clear(); // the other node is the active one now: its own daemon reports what it meets
            _status = _status with { Connected = false, Since = _clock.GetUtcNow(), AgentPid = null, OldestPending = null };
        }
    }

    /// <summary>One term: sessions, reconnected with doubling backoff, until the term ends or the daemon stops.</summary>
    private async Task ServeTermAsync(ActiveTerm term, CancellationToken stop)
    {
        using var wakeOnEnd = term.Ended.Register(Wake);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stop, term.Ended);
        var backoff = _options.InitialBackoff;
        while (!waiting.IsCancellationRequested)
        {
            string cause;
            bool fenced = false;
            try
            {
                await RunSessionAsync(term, stop).ConfigureAwait(false);
                return;
            }
            catch (FencedException e)
            {
                (cause, fenced) = (e.Message, true); // tried again with the same term: refused until this node's role ends
            }
            catch (Exception e) when (e is HaSyncException or IOException)
            {
                cause = e.Message;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                cause = $"unexpected {e}"; // a bug: say all there is, and keep serving the target
            }
            Update(s => s with { Connected = false, Since = s.Connected ? _clock.GetUtcNow() : s.Since, AgentPid = null, Fenced = fenced,
                LastError = $"session: {cause}", LastErrorAt = _clock.GetUtcNow() });
            if (stop.IsCancellationRequested)
            {
                _log.StoppedUnflushed(Name, cause);
                return;
            }
            if (term.Ended.IsCancellationRequested)
                return;
            string ownWords = cause.StartsWith($"target {Name}: ", StringComparison.Ordinal) ? cause[(Name.Length + 9)..] : cause;
            _log.SessionLost(Name, ownWords, backoff.TotalSeconds);
            try
            {
                await Task.Delay(backoff, _clock, waiting.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
        }
    }

    private async Task RunSessionAsync(ActiveTerm term, CancellationToken stop)
    {
        string command = string.Join(' ', AgentProcess.CommandLine(_target, out string program).Prepend(program).Select(AgentProcess.ShellQuote));
        _log.Connecting(Name, command);
        await using var agent = AgentProcess.Start(_target, onStderr: line => _log.AgentSaid(Name, line));
        using var session = AgentSession.Open(agent.Input, agent.Output, _target.Name, agent.Describe);
        await _role.Epochs.ClaimAsync(session, term.Epoch, outbid: false, adopt: false).ConfigureAwait(false);
        var passive = new PassiveState();
        await ResyncAsync(session, passive, startUp: true).ConfigureAwait(false);
        Update(s => s with { Connected = true, Since = _clock.GetUtcNow(), AgentPid = agent.Pid, Fenced = false });
        var nextAudit = _options.AuditInterval is { } every ? _clock.GetUtcNow() + every : DateTimeOffset.MaxValue;
        while (!stop.IsCancellationRequested)
        {
            await WaitForWorkAsync(session, nextAudit, term, stop).ConfigureAwait(false);
            if (stop.IsCancellationRequested)
                break;
            if (!await _role.ConfirmAsync(term, CancellationToken.None).ConfigureAwait(false))
                return; // no longer active: push nothing more, not even what is queued
            if (_clock.GetUtcNow() >= nextAudit)
            {
                await ResyncAsync(session, passive, startUp: false).ConfigureAwait(false);
                nextAudit = _clock.GetUtcNow() + _options.AuditInterval!.Value;
            }
            else
                await PushDirtyAsync(session, passive, CancellationToken.None).ConfigureAwait(false);
        }
        if (term.Ended.IsCancellationRequested)
            return;
        // Stopping: whatever the daemon queued last goes out, within the drain timeout.
        using var drain = new CancellationTokenSource(_options.DrainTimeout);
        try
        {
            await PushDirtyAsync(session, passive, drain.Token).WaitAsync(drain.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _log.StoppedUnflushed(Name, $"the last push took longer than {_options.DrainTimeout.TotalSeconds:F0} s");
        }
    }

    /// <summary>A full compare against the passive's manifest: everything queued before it is covered.</summary>
    private async Task ResyncAsync(AgentSession session, PassiveState passive, bool startUp)
    {
        var taken = TakeDirty(allRetries: true);
        ResyncStats stats;
        try
        {
            stats = await Resync.RunAsync(_config, session, _config.Delete, passive: passive, cache: _cache).ConfigureAwait(false);
        }
        catch
        {
            Restore(taken);
            throw;
        }
        if (startUp)
            _log.Resynced(Name, stats.Scanned, stats.FilesSent, stats.OthersCreated, stats.MetadataFixed, stats.Deleted, stats.Failures.Count, stats.Elapsed.TotalSeconds);
        else
            _log.Audited(Name, stats.FilesSent, stats.MetadataFixed, stats.Deleted, stats.Failures.Count);
        Settle(stats, _clock.GetUtcNow(), resync: true, covered: _ => true);
    }

    /// <summary>Waits until something is dirty, a retry or the audit is due, or the daemon stops.</summary>
    private async Task WaitForWorkAsync(AgentSession session, DateTimeOffset nextAudit, ActiveTerm term, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested && !term.Ended.IsCancellationRequested)
        {
            var now = _clock.GetUtcNow();
            DateTimeOffset wakeAt = nextAudit;
            lock (_lock)
            {
                foreach (var (path, retry) in _retries.Where(r => r.Value.Due <= now).ToList())
                {
                    _dirty.Add(path);
                    _dirtySince = _dirtySince is null || retry.Since < _dirtySince ? retry.Since : _dirtySince;
                }
                if (_dirty.Count > 0 || _dirtyFullScan || now >= nextAudit)
                    return;
                foreach (var retry in _retries.Values)
                    wakeAt = retry.Due < wakeAt ? retry.Due : wakeAt;
            }
            var wait = wakeAt == DateTimeOffset.MaxValue ? Timeout.InfiniteTimeSpan
                : wakeAt > now ? wakeAt - now : TimeSpan.Zero;
            var woken = _wake.WaitAsync(wait, stop);
            await Task.WhenAny(woken, session.Ended).ConfigureAwait(false);
            if (session.Ended.IsCompleted)
                throw await session.Ended.ConfigureAwait(false); // the agent went away while idle: reconnect now
            try
            {
                await woken.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round: take the dirty set, scan it, push the differences, wait for every ack.</summary>
    private async Task PushDirtyAsync(AgentSession session, PassiveState passive, CancellationToken cancellationToken)
    {
        var taken = TakeDirty(allRetries: false);
        if (taken.Paths.Count == 0 && !taken.FullScan)
            return;
        var clock = Stopwatch.StartNew();
        var unreadable = new Dictionary<string, string>(StringComparer.Ordinal);
        List<PathDifference> differences;
        ResyncStats stats;
        long scanned;
        try
        {
            differences = await Task.Run(() => _scanner.Compare(taken.Paths, taken.FullScan, passive, (path, e) => unreadable[path] = e.Message), cancellationToken)
                .ConfigureAwait(false);
            scanned = clock.ElapsedMilliseconds;
            stats = await Resync.PushAsync(_config, session, differences, _config.Delete, passive, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Restore(taken); // still to do: counted in the queue and the lag while the session is down
            throw;
        }
        var changes = differences.Where(d => d.Status != PathStatus.Identical).ToList();
        foreach (var (path, cause) in unreadable)
        {
            stats.Failures.Add($"{path}: {cause}");
            stats.FailedPaths.Add(path);
        }
        if (changes.Count > 0)
            _log.Pushed(Name, changes.Count, clock.ElapsedMilliseconds, scanned);
        var compared = differences.Select(d => d.Path).ToHashSet(StringComparer.Ordinal);
        Settle(stats, taken.Since ?? _clock.GetUtcNow(), resync: false, covered: compared.Contains);
    }

    /// <summary>What a round (or a resync) took from the queue, to give back if it fails.</summary>
    private sealed record Taken(List<string> Paths, bool FullScan, DateTimeOffset? Since, Dictionary<string, Retry> Retries);

    /// <summary>Takes the dirty set (and the retries of its paths, or all of them for a resync); the round in flight
    /// now carries the oldest change.</summary>
    private Taken TakeDirty(bool allRetries)
    {
        lock (_lock)
        {
            var paths = _dirty.ToList();
            var retries = _retries.Where(r => allRetries || _dirty.Contains(r.Key)).ToDictionary(StringComparer.Ordinal);
            var taken = new Taken(paths, _dirtyFullScan, _dirtySince, retries);
            foreach (string path in retries.Keys)
                _retries.Remove(path);
            _dirty.Clear();
            _dirtyFullScan = false;
            _dirtySince = null;
            _status = _status with { OldestPending = taken.Since ?? (retries.Count > 0 ? retries.Values.Min(r => r.Since) : null) };
            return taken;
        }
    }

    private void Restore(Taken taken)
    {
        lock (_lock)
        {
            _dirty.UnionWith(taken.Paths);
            _dirtyFullScan |= taken.FullScan;
            if (taken.Since is { } since && (_dirtySince is null || since < _dirtySince))
                _dirtySince = since;
            foreach (var (path, retry) in taken.Retries)
                _retries.TryAdd(path, retry);
            _status = _status with { OldestPending = null };
        }
    }

    /// <summary>Counts what was done, schedules what failed for another try, and keeps the conflicts standing: those
    /// met now, and earlier ones that this push did not cover.</summary>
    private void Settle(ResyncStats stats, DateTimeOffset since, bool resync, Func<string, bool> covered)
    {
        var now = _clock.GetUtcNow();
        var newConflicts = new List<string>();
        lock (_lock)
        {
            foreach (string path in _conflicts.Keys.Where(p => covered(p) && !stats.Conflicts.ContainsKey(p)).ToList())
                _conflicts.Remove(path);
            foreach (var (path, message) in stats.Conflicts)
            {
                if (!_conflicts.ContainsKey(path))
                    newConflicts.Add(message);
                _conflicts[path] = new ConflictStatus(path, message, _conflicts.TryGetValue(path, out var known) ? known.Since : now);
            }
            foreach (string path in stats.FailedPaths)
            {
                int attempts = _retries.TryGetValue(path, out var known) ? known.Attempts + 1 : 1;
                var delay = TimeSpan.FromTicks(Math.Min(_options.RetryDelay.Ticks << Math.Min(attempts - 1, 20), _options.MaxRetryDelay.Ticks));
                _retries[path] = new Retry(attempts, now + delay, known?.Since ?? since);
            }
            _status = _status with
            {
                LastSuccess = now,
                OldestPending = null,
                Pushed = _status.Pushed + stats.FilesSent + stats.OthersCreated + stats.MetadataFixed + stats.Deleted,
                Resyncs = _status.Resyncs + (resync ? 1 : 0),
                LastError = stats.Failures.Count > 0 ? stats.Failures[^1] : _status.LastError,
                LastErrorAt = stats.Failures.Count > 0 ? now : _status.LastErrorAt,
            };
        }
        foreach (string failure in stats.Failures)
            _log.PushFailed(Name, failure);
        foreach (string conflict in newConflicts)
            _log.Conflict(Name, conflict);
        if (stats.FailedPaths.Count > 0)
            Wake(); // re-evaluate the wait: a retry is now due at some point
    }

    /// <summary>Releases the wake-up semaphore (after <see cref="RunAsync"/> has returned).</summary>
    public void Dispose() => _wake.Dispose();

    private void Update(Func<TargetStatus, TargetStatus> change)
    {
        lock (_lock)
            _status = change(_status);
    }
}
