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
    /// <summary>While disconnected: when the next attempt to connect is due.</summary>
    public DateTimeOffset? NextConnect { get; init; }
    /// <summary>The agent's process (ssh, or the local agent) while connected.</summary>
    public int? AgentPid { get; init; }
    /// <summary>The passive refused this node's epoch: it has accepted a later active's since.</summary>
    public bool Fenced { get; init; }
    /// <summary>Paths the passive changed on its own and kept: each needs an admin (<c>hasync resolve</c>).</summary>
    public IReadOnlyList<ConflictStatus> Conflicts { get; init; } = [];
    /// <summary>Paths whose last push failed and that wait for another try.</summary>
    public IReadOnlyList<FailingStatus> Failing { get; init; } = [];
    /// <summary>Paths where what the daemon believed the passive held was not what it holds, found by the self-check
    /// after a quiet period and repaired (unless someone changed the passive by hand, each one is a bug to report).</summary>
    public long DriftRepaired { get; init; }
    /// <summary>When the self-check last compared the daemon's belief with the passive's manifest.</summary>
    public DateTimeOffset? LastSelfCheck { get; init; }
}

/// <summary>A path whose push failed: the cause, the attempts so far and when it is tried again.</summary>
public sealed record FailingStatus(string Path, string Error, int Attempts, DateTimeOffset Since, DateTimeOffset NextTry);

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
    /// <summary>After this long without a push, the subtrees pushed since the last self-check are compared with the
    /// passive's manifest (null: never).</summary>
    public TimeSpan? SelfCheckAfter { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Keeps one target current: one long-lived agent session (ssh started once, not per batch), a start-up
/// resync, then batches of dirty paths scanned and pushed with many files in flight. If the session dies it
/// reconnects with doubling backoff and resyncs; changes made meanwhile wait in the queue, so none is
/// lost. Paths that fail (unreadable on the active, refused by the passive) are tried again later, each on its own
/// doubling schedule. Each target has its own pusher, so a slow or dead one holds back no other.
/// </summary>
/// <remarks>
/// Implementation notes.
/// The pusher compares each scan with what it believes the passive holds (<see cref="PassiveState"/>), so the
/// belief must never be wrong for long. Two things keep it right. A path whose push was not acknowledged as done
/// (failed, refused, a conflict) is not believed either way: before the next round it is learned again from the
/// passive's manifest. And after each quiet period the subtrees pushed since the last self-check are compared with
/// the passive's manifest and then with the active: any difference is repaired, and one the belief did not explain
/// is logged as drift and counted in the status, as the daemon bug it is.
/// </remarks>
public sealed class TargetPusher : IDisposable
{
    private const int MaxSelfCheckRoots = 256; // more subtrees than this: the self-check covers the whole watched set
    private const int MaxRoundPaths = 1024; // a burst goes in rounds of this many, each scanned while the passive applies the one ahead
    private readonly HaSyncConfig _config;
    private readonly TargetConfig _target;
    private readonly ChangeScanner _scanner;
    private readonly HashCache _cache;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private readonly PusherOptions _options;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly SemaphoreSlim _reconnectNow = new(0); // SIGHUP: the wait before the next connect is cut short
    private readonly PushBacklog _backlog;
    private readonly RoleMonitor _role;
    private readonly Lock _lock = new();
    // Guarded by _lock:
    private readonly SortedDictionary<string, ConflictStatus> _conflicts = new(StringComparer.Ordinal);
    private bool _standby = true; // not active: changes are not queued (becoming active starts with a resync)
    private TargetStatus _status;
    // The push loop's own:
    private readonly SortedSet<string> _unverified = new(StringComparer.Ordinal); // subtrees pushed since the last self-check
    private DateTimeOffset _lastRound;
    private RoundInFlight? _ahead; // sent, its acks not yet taken in: the next round is scanned and sent meanwhile
    private readonly HashSet<string> _parentsOwed = new(StringComparer.Ordinal); // directories whose own entry a round left for later
    private readonly HashSet<string> _setIdReported = new(StringComparer.Ordinal); // said once per path, not per push

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
        _backlog = new PushBacklog(clock, _options.RetryDelay, _options.MaxRetryDelay);
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
                var conflicts = _conflicts.Keys.ToHashSet(StringComparer.Ordinal);
                var failing = _backlog.Retries.Where(r => !conflicts.Contains(r.Key))
                    .Select(r => new FailingStatus(r.Key, r.Value.Error, r.Value.Attempts, r.Value.Since, r.Value.Next)).OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
                return _status with { Queue = _backlog.Count(conflicts), OldestPending = _backlog.OldestPending, Conflicts = [.. _conflicts.Values], Failing = failing };
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
            _backlog.Add(batch.Paths, batch.FullScan, batch.OldestEvent);
        }
        Wake();
    }

    /// <summary>Makes every retry (conflicts included) due now, and a reconnect that waits out its backoff: after an admin
    /// settled something (SIGHUP, hasync resolve).</summary>
    public void RetryNow()
    {
        _backlog.RetryNow();
        Wake();
        lock (_reconnectNow)
            if (_reconnectNow.CurrentCount == 0)
                _reconnectNow.Release();
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
            _backlog.Clear();
            _conflicts.Clear(); // the other node is the active one now: its own daemon reports what it meets
            _status = _status with { Connected = false, Since = _clock.GetUtcNow(), AgentPid = null, NextConnect = null };
        }
    }

    /// <summary>One term: sessions, reconnected with doubling backoff (back to its start once a session got connected; cut
    /// short by <see cref="RetryNow"/>), until the term ends or the daemon stops.</summary>
    private async Task ServeTermAsync(ActiveTerm term, CancellationToken stop)
    {
        using var wakeOnEnd = term.Ended.Register(Wake);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stop, term.Ended);
        var backoff = _options.InitialBackoff;
        string? said = null; // the outage's cause as last logged: said again only when it changes
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
            if (Status.Connected)
                (backoff, said) = (_options.InitialBackoff, null); // that session worked: this is a new outage, not the same one going on
            var now = _clock.GetUtcNow();
            Update(s => s with { Connected = false, Since = s.Connected ? now : s.Since, AgentPid = null, Fenced = fenced,
                LastError = $"session: {cause}", LastErrorAt = now, NextConnect = now + backoff });
            if (stop.IsCancellationRequested)
            {
                _log.StoppedUnflushed(Name, cause);
                return;
            }
            if (term.Ended.IsCancellationRequested)
                return;
            string ownWords = cause.StartsWith($"target {Name}: ", StringComparison.Ordinal) ? cause[(Name.Length + 9)..] : cause;
            if (ownWords != said)
                _log.SessionLost(Name, ownWords, backoff.TotalSeconds);
            else
                _log.StillDown(Name, backoff.TotalSeconds);
            said = ownWords;
            while (_reconnectNow.Wait(TimeSpan.Zero, CancellationToken.None))
            {
                // a SIGHUP from before this outage is not for it
            }
            using (var either = CancellationTokenSource.CreateLinkedTokenSource(waiting.Token))
            {
                var delay = Task.Delay(backoff, _clock, either.Token);
                var hangup = _reconnectNow.WaitAsync(either.Token);
                await Task.WhenAny(delay, hangup).ConfigureAwait(false);
                await either.CancelAsync().ConfigureAwait(false);
            }
            if (waiting.IsCancellationRequested)
                return;
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
        }
    }

    private async Task RunSessionAsync(ActiveTerm term, CancellationToken stop)
    {
        string command = string.Join(' ', AgentProcess.CommandLine(_target, out string program).Prepend(program).Select(AgentProcess.ShellQuote));
        _log.Connecting(Name, command);
        await using var agent = AgentProcess.Start(_target, onStderr: line => _log.AgentSaid(Name, line));
        try
        {
            await RunSessionAsync(agent, term, stop).ConfigureAwait(false);
        }
        catch
        {
            agent.Abandon();
            throw;
        }
    }

    private async Task RunSessionAsync(AgentProcess agent, ActiveTerm term, CancellationToken stop)
    {
        using var session = AgentSession.Open(agent.Input, agent.Output, _target.Name, agent.Describe, _target.Heartbeat);
        try
        {
            await ServeSessionAsync(session, agent.Pid, term, stop).ConfigureAwait(false);
        }
        finally
        {
            if (_ahead is { } ahead)
                _backlog.GiveBack(ahead.Round); // sent, never acknowledged: queued again (a new session starts with a resync anyway)
            _ahead = null;
        }
    }

    private async Task ServeSessionAsync(AgentSession session, int agentPid, ActiveTerm term, CancellationToken stop)
    {
        await _role.Epochs.ClaimAsync(session, term.Epoch, outbid: false, adopt: false).ConfigureAwait(false);
        _parentsOwed.Clear(); // the start-up resync compares every directory
        var passive = new PassiveState();
        await ResyncAsync(session, passive, startUp: true).ConfigureAwait(false);
        Update(s => s with { Connected = true, Since = _clock.GetUtcNow(), AgentPid = agentPid, Fenced = false, NextConnect = null });
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
                await SettleAheadAsync().ConfigureAwait(false);
                await ResyncAsync(session, passive, startUp: false).ConfigureAwait(false);
                nextAudit = _clock.GetUtcNow() + _options.AuditInterval!.Value;
            }
            else if (_backlog.HasWork || _ahead is not null)
                await PushDirtyAsync(session, passive, pipeline: true, CancellationToken.None).ConfigureAwait(false);
            else if (SelfCheckDue(_clock.GetUtcNow()))
                await SelfCheckAsync(session, passive).ConfigureAwait(false);
        }
        if (term.Ended.IsCancellationRequested)
            return;
        // Stopping: whatever the daemon queued last goes out, within the drain timeout.
        using var drain = new CancellationTokenSource(_options.DrainTimeout);
        try
        {
            await PushDirtyAsync(session, passive, pipeline: false, drain.Token).WaitAsync(drain.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _log.StoppedUnflushed(Name, $"the last push took longer than {_options.DrainTimeout.TotalSeconds:F0} s");
        }
    }

    /// <summary>A full compare against the passive's manifest: everything queued before it is covered.</summary>
    private async Task ResyncAsync(AgentSession session, PassiveState passive, bool startUp)
    {
        var round = _backlog.Take(allRetries: true);
        ResyncStats stats;
        try
        {
            stats = await Resync.RunAsync(_config, session, _config.Delete, passive: passive, cache: _cache, spaceWaits: _backlog.SpaceWaits).ConfigureAwait(false);
        }
        catch
        {
            _backlog.GiveBack(round);
            throw;
        }
        if (startUp)
            _log.Resynced(Name, stats.Scanned, stats.FilesSent, stats.OthersCreated, stats.MetadataFixed, stats.Deleted, stats.Failures.Count, stats.Elapsed.TotalSeconds);
        else
            _log.Audited(Name, stats.FilesSent, stats.MetadataFixed, stats.Deleted, stats.Failures.Count);
        _unverified.Clear(); // the manifest the resync started from is the passive's own word
        Settle(round, stats, resync: true, covered: _ => true);
        // Both sides' listings and the scan's buffers are garbage now: a daemon that watches for weeks gives that memory
        // back to the node rather than holding its start-up peak (a compacting collection of what is left, once a resync).
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    /// <summary>Waits until something is dirty, a retry, the audit or the self-check is due, or the daemon stops.</summary>
    private async Task WaitForWorkAsync(AgentSession session, DateTimeOffset nextAudit, ActiveTerm term, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested && !term.Ended.IsCancellationRequested)
        {
            var now = _clock.GetUtcNow();
            if (_backlog.HasWork || _ahead is not null || now >= nextAudit || SelfCheckDue(now))
                return;
            DateTimeOffset wakeAt = nextAudit;
            if (_backlog.NextRetry is { } retry && retry < wakeAt)
                wakeAt = retry;
            if (_unverified.Count > 0 && _options.SelfCheckAfter is { } quiet && _lastRound + quiet < wakeAt)
                wakeAt = _lastRound + quiet;
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

    private bool SelfCheckDue(DateTimeOffset now) => _unverified.Count > 0 && _options.SelfCheckAfter is { } quiet && now >= _lastRound + quiet;

    /// <summary>One round: takes the dirty set, scans it, pushes the differences. With <paramref name="pipeline"/>, while more
    /// work waits, the round is left in flight and the next call scans and sends the following one while the passive
    /// applies this one (the round ahead's acks are taken in after that, before another is sent): the passive is never idle
    /// waiting for a scan, nor the active for a commit. Otherwise, and whenever the queue runs dry, every ack is waited for.</summary>
    /// <remarks>A round never compares a path the round ahead compared (it is left to the next round): were X pushed, then
    /// Y, then X again, a belief not yet told of Y would find X already there.</remarks>
    private async Task PushDirtyAsync(AgentSession session, PassiveState passive, bool pipeline, CancellationToken cancellationToken)
    {
        var round = _backlog.Take(max: pipeline ? MaxRoundPaths : int.MaxValue);
        PushRound? ours = round; // taken here, and neither settled nor handed on as the round ahead
        try
        {
            // What the round is about to compare must not rest on a belief an earlier failure left in doubt (the sets are
            // built only then: a burst of thousands of paths with nothing in doubt pays nothing here). Nor may it race the
            // round ahead, whose outcome may add to the doubt: that one is settled first.
            if (round.FullScan || passive.Uncertain.Count > 0)
                await SettleAheadAsync().ConfigureAwait(false);
            if (passive.Uncertain.Count > 0)
            {
                var taken = round.Paths.ToHashSet(StringComparer.Ordinal);
                var above = TreeWalker.WithAncestors(round.Paths);
                var doubted = passive.Uncertain.Where(u => round.FullScan || TreeWalker.WithinAny(u, taken) || above.Contains(u)).ToList();
                await RelearnAsync(session, passive, doubted).ConfigureAwait(false);
            }
            if (_ahead is { } ahead)
                ours = round = _backlog.Defer(round, round.Paths.Where(ahead.Claims).ToHashSet(StringComparer.Ordinal));
            var sent = round.IsEmpty ? null : await SendAsync(session, passive, round, cancellationToken: cancellationToken).ConfigureAwait(false);
            await SettleAheadAsync().ConfigureAwait(false);
            (_ahead, ours) = (sent, null);
            if (!pipeline || !_backlog.HasWork)
                await SettleAheadAsync().ConfigureAwait(false);
            if (_ahead is null && _parentsOwed.Count > 0)
                await FinishAsync(await SendAsync(session, passive, new PushRound([], FullScan: false, Since: null), cancellationToken: cancellationToken).ConfigureAwait(false))
                    .ConfigureAwait(false); // the directories left by rounds that ran ahead: their own entries, now that none is in flight
        }
        catch
        {
            if (ours is not null)
                _backlog.GiveBack(ours); // still to do: counted in the queue and the lag while the session is down
            throw;
        }
    }

    /// <summary>Takes in the acks of the round ahead, if one is in flight.</summary>
    private async Task SettleAheadAsync()
    {
        if (_ahead is not { } ahead)
            return;
        try
        {
            await FinishAsync(ahead).ConfigureAwait(false);
        }
        catch
        {
            _backlog.GiveBack(ahead.Round);
            throw;
        }
        finally
        {
            _ahead = null;
        }
    }

    /// <summary>A round sent whose acks are not yet taken in, and what it claims until then.</summary>
    private sealed class RoundInFlight
    {
        public required PushRound Round { get; init; }
        public required Resync.SentPush Sent { get; init; }
        public required PassiveState Passive { get; init; }
        public required List<PathDifference> Differences { get; init; }
        public required Dictionary<string, string> Unreadable { get; init; }
        public required Stopwatch Clock { get; init; }
        public required long ScanMs { get; init; }
        public required HashSet<string> Compared { get; init; }  // every path compared and pushed: their belief is about to change
        public required HashSet<string> Roots { get; init; }     // the subtrees it walked
        public required HashSet<string> AboveRoots { get; init; } // and the directories above them

        /// <summary>A later round must leave <paramref name="path"/> to the one after it.</summary>
        public bool Claims(string path) =>
            Round.FullScan || Compared.Contains(path) || AboveRoots.Contains(path) || TreeWalker.WithinAny(path, Roots);
    }

    /// <summary>Scans <paramref name="round"/>'s paths and sends what differs from the belief (see <see cref="FinishAsync"/>).</summary>
    private async Task<RoundInFlight> SendAsync(AgentSession session, PassiveState passive, PushRound round,
        Func<string, bool>? leaveOut = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var unreadable = new Dictionary<string, string>(StringComparer.Ordinal);
        var busy = _ahead?.Compared;
        var differences = await Task.Run(() => _scanner.Compare(round.Paths, round.FullScan, passive, session.KeptModeBits, (path, e) => unreadable[path] = e.Message,
            busy, _parentsOwed), cancellationToken).ConfigureAwait(false);
        if (leaveOut is not null)
        {
            differences.RemoveAll(d => leaveOut(d.Path));
            foreach (string path in unreadable.Keys.Where(leaveOut).ToList())
                unreadable.Remove(path);
        }
        var compared = differences.Select(d => d.Path).ToHashSet(StringComparer.Ordinal);
        var roots = _scanner.Roots(round.Paths);
        long scanned = clock.ElapsedMilliseconds;
        var sent = await Resync.SendAsync(_config, session, differences, _config.Delete, spaceWaits: _backlog.SpaceWaits,
            cancellationToken: cancellationToken).ConfigureAwait(false);
        return new RoundInFlight
        {
            Round = round, Sent = sent, Passive = passive, Differences = differences, Unreadable = unreadable, Clock = clock, ScanMs = scanned,
            Compared = compared, Roots = roots.ToHashSet(StringComparer.Ordinal), AboveRoots = TreeWalker.WithAncestors(roots),
        };
    }

    /// <summary>Waits for the acks of <paramref name="round"/>, settles its outcome; returns the differences that were pushed.</summary>
    private async Task<List<PathDifference>> FinishAsync(RoundInFlight round)
    {
        var stats = await Resync.FinishAsync(round.Sent, round.Passive).ConfigureAwait(false);
        var changes = round.Differences.Where(d => d.Status != PathStatus.Identical && !stats.HeldForSpace.Contains(d.Path)).ToList();
        foreach (var (path, cause) in round.Unreadable)
        {
            stats.Failures.Add($"{path}: {cause}");
            stats.FailedPaths[path] = $"{path}: {cause}";
        }
        if (changes.Count > 0)
            _log.Pushed(Name, changes.Count, round.Clock.ElapsedMilliseconds, round.ScanMs);
        _unverified.UnionWith(round.Round.FullScan ? _config.Paths : round.Roots);
        _lastRound = _clock.GetUtcNow();
        Settle(round.Round, stats, resync: false, covered: round.Compared.Contains);
        return changes;
    }

    /// <summary>Replaces the belief about <paramref name="roots"/> (and what is below them) with the passive's manifest;
    /// returns where the two differed.</summary>
    /// <returns>Null when the passive refused to list them (the belief stays in doubt; the pushes say why).</returns>
    private async Task<List<PathDifference>?> RelearnAsync(AgentSession session, PassiveState passive, List<string> roots)
    {
        if (roots.Count == 0)
            return [];
        try
        {
            var manifest = await Resync.ManifestAsync(_config, session, roots).ConfigureAwait(false);
            return passive.Relearn(roots, manifest);
        }
        catch (AgentRequestException e)
        {
            _log.RelearnRefused(Name, string.Join(", ", roots.Take(3)), e.Message);
            return null;
        }
    }

    /// <summary>The self-check after a quiet period (see the implementation notes): the subtrees pushed since the last one
    /// are compared with the passive's manifest, then scanned again on the active, and whatever differs is pushed.</summary>
    private async Task SelfCheckAsync(AgentSession session, PassiveState passive)
    {
        await SettleAheadAsync().ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        var roots = TreeWalker.Cover(_unverified);
        _unverified.Clear();
        if (roots.Count > MaxSelfCheckRoots)
            roots = [.. _config.Paths];
        // Failing paths and conflicts are known to differ and have their own schedule: neither drift nor pushed here.
        var known = _backlog.Retries.Keys.ToHashSet(StringComparer.Ordinal);
        bool Known(string path) => TreeWalker.WithinAny(path, known);
        if (await RelearnAsync(session, passive, roots).ConfigureAwait(false) is not { } differences)
            return;
        // A path the passive's journal says it changed on its own is a conflict in the making, not the daemon's error.
        var drift = differences.Where(d => !Known(d.Path) && d.Passive?.Local is null or Guard.LocalChange.None).ToList();
        foreach (var d in drift)
            _log.DriftRepaired(Name, d.Path, Describe(d.Active), Describe(d.Passive));
        var round = new PushRound([.. roots.Where(r => !Known(r))], FullScan: false, Since: null);
        var unannounced = await FinishAsync(await SendAsync(session, passive, round, leaveOut: Known).ConfigureAwait(false)).ConfigureAwait(false);
        var missed = unannounced.Where(d => !drift.Any(x => x.Path == d.Path)).ToList();
        if (missed.Count > 0)
        {
            string paths = string.Join(", ", missed.Take(5).Select(d => d.Path));
            _log.UnannouncedChanges(Name, missed.Count, paths);
        }
        _unverified.Clear(); // what the self-check pushed was compared just now
        Update(s => s with { DriftRepaired = s.DriftRepaired + drift.Count, LastSelfCheck = _clock.GetUtcNow() });
        if (_log.IsEnabled(LogLevel.Debug))
            _log.SelfChecked(Name, roots.Count, roots.Sum(r => passive.Subtree(r).Count()), drift.Count, clock.ElapsedMilliseconds);
    }

    private static string Describe(FileEntry? entry) => entry is null ? "nothing" : entry.Kind switch
    {
        EntryKind.File => $"a file of {entry.Size} bytes ({entry.ModeOctal} {entry.Ownership}, hash {entry.HashHex[..Math.Min(12, entry.HashHex.Length)]})",
        EntryKind.Symlink => $"a symlink to {entry.LinkTarget}",
        _ => $"a directory ({entry.ModeOctal} {entry.Ownership}, mtime {Sync.DiffSide.Time(entry.MtimeSeconds, entry.MtimeNanoseconds)})",
    };

    /// <summary>Counts what was done, schedules what failed for another try (one log line when a path starts failing or its
    /// cause changes, not one per try), and keeps the conflicts standing: those met now, and earlier ones that this push
    /// did not cover.</summary>
    private void Settle(PushRound round, ResyncStats stats, bool resync, Func<string, bool> covered)
    {
        var now = _clock.GetUtcNow();
        var newConflicts = new List<string>();
        var before = _backlog.Retries;
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
            _backlog.Complete(round, stats.FailedPaths, everything: resync, stats.SpaceNeeded, stats.HeldForSpace);
            _status = _status with
            {
                LastSuccess = now,
                Pushed = _status.Pushed + stats.FilesSent + stats.OthersCreated + stats.MetadataFixed + stats.Deleted,
                Resyncs = _status.Resyncs + (resync ? 1 : 0),
                LastError = stats.Failures.Count > 0 ? stats.Failures[^1] : _status.LastError,
                LastErrorAt = stats.Failures.Count > 0 ? now : _status.LastErrorAt,
            };
        }
        foreach (var (path, failure) in stats.FailedPaths)
            if (!stats.Conflicts.ContainsKey(path) && !(before.TryGetValue(path, out var known) && known.Error == failure))
                _log.PushFailed(Name, failure);
        foreach (string conflict in newConflicts)
            _log.Conflict(Name, conflict);
        foreach (var (path, mode) in stats.SetIdNotKept)
            if (_setIdReported.Add(path))
                _log.SetIdNotKept(Name, Resync.SetIdNotKept(path, mode));
        if (stats.FailedPaths.Count > 0)
            Wake(); // re-evaluate the wait: a retry is now due at some point
    }

    /// <summary>Releases the wake-up semaphore (after <see cref="RunAsync"/> has returned).</summary>
    public void Dispose()
    {
        _wake.Dispose();
        _reconnectNow.Dispose();
    }

    private void Update(Func<TargetStatus, TargetStatus> change)
    {
        lock (_lock)
            _status = change(_status);
    }
}
