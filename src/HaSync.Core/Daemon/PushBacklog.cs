namespace HaSync.Daemon;

/// <summary>A round of work taken from a <see cref="PushBacklog"/>: given back whole if it fails, completed otherwise.</summary>
public sealed record PushRound(IReadOnlyList<string> Paths, bool FullScan, DateTimeOffset? Since)
{
    /// <summary>Nothing to do.</summary>
    public bool IsEmpty => Paths.Count == 0 && !FullScan;
}

/// <summary>
/// What one target still has to push: the dirty paths events named, a pending full scan, the rounds in flight, and the
/// paths that failed, each with its own retry schedule. A failed path waits <c>retryDelay</c>, then twice that after
/// each further failure, up to <c>maxRetryDelay</c>; its record (attempts, first failure, last error) lasts while
/// it is being retried and goes only when the path succeeds. A path refused for lack of room on the passive is not sent
/// again on that schedule: every <c>retryDelay</c> the passive is asked for its free space (a question of a few bytes),
/// and the path is sent as soon as it reports the room needed, or after <c>maxRetryDelay</c> in any case, so that a wrong
/// guess of the room never stalls it. Thread-safe: events arrive on the aggregator's thread,
/// status is read on another, the pusher takes and completes rounds.
/// </summary>
public sealed class PushBacklog(TimeProvider clock, TimeSpan retryDelay, TimeSpan maxRetryDelay)
{
    private readonly Lock _lock = new();
    private readonly HashSet<string> _dirty = new(StringComparer.Ordinal);
    private bool _fullScan;
    private DateTimeOffset? _dirtySince;                      // the oldest change not taken yet
    private readonly List<PushRound> _inFlight = []; // taken, neither completed nor given back (the pusher has one ahead of the other at most)
    private readonly Dictionary<string, Retry> _retries = new(StringComparer.Ordinal);

    /// <summary>A path that failed: how often, since when its change waits, when it is due again, and why it failed last;
    /// for lack of room, also the free space the passive should report before then, and when to ask again.</summary>
    public sealed record Retry(int Attempts, DateTimeOffset Due, DateTimeOffset Since, string Error, long? SpaceNeeded = null, DateTimeOffset? Ask = null)
    {
        /// <summary>When the path is next taken into a round (to ask about room, or to be sent).</summary>
        public DateTimeOffset Next => Ask is { } ask && ask < Due ? ask : Due;
    }

    /// <summary>Paths named by events (or a full scan), the oldest of their changes at <paramref name="since"/>.</summary>
    public void Add(IEnumerable<string> paths, bool fullScan, DateTimeOffset since)
    {
        lock (_lock)
        {
            _dirty.UnionWith(paths);
            _fullScan |= fullScan;
            if (_dirtySince is null || since < _dirtySince)
                _dirtySince = since;
        }
    }

    /// <summary>Takes the dirty paths and the retries that are due (every retry with <paramref name="allRetries"/>,
    /// for a resync), at most <paramref name="max"/> of them unless a full scan is due (the rest wait for the next round);
    /// they count as in flight until <see cref="Complete"/> or <see cref="GiveBack"/>.</summary>
    public PushRound Take(bool allRetries = false, int max = int.MaxValue)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            var since = _dirtySince;
            foreach (var (path, retry) in _retries)
                if (allRetries || retry.Next <= now || _dirty.Contains(path))
                {
                    _dirty.Add(path);
                    since = since is null || retry.Since < since ? retry.Since : since;
                }
            if (!_fullScan && _dirty.Count > max)
            {
                // The oldest change may be among those left: they keep its time, and so does the round.
                var some = new PushRound([.. _dirty.Take(max)], FullScan: false, since);
                _dirty.ExceptWith(some.Paths);
                _inFlight.Add(some);
                return some;
            }
            var round = new PushRound([.. _dirty], _fullScan, since);
            _dirty.Clear();
            _fullScan = false;
            _dirtySince = null;
            if (!round.IsEmpty)
                _inFlight.Add(round);
            return round;
        }
    }

    /// <summary>The round could not be done (the session died): all of it is queued again.</summary>
    public void GiveBack(PushRound round)
    {
        lock (_lock)
        {
            _inFlight.Remove(round);
            Add(round.Paths, round.FullScan, round.Since ?? clock.GetUtcNow());
        }
    }

    /// <summary>Puts <paramref name="later"/> (paths of <paramref name="round"/>) back in the queue, to be taken by a later round;
    /// returns the rest of the round, which is in flight in its stead.</summary>
    public PushRound Defer(PushRound round, IReadOnlySet<string> later)
    {
        if (later.Count == 0)
            return round;
        var kept = round with { Paths = [.. round.Paths.Where(p => !later.Contains(p))] };
        lock (_lock)
        {
            _inFlight.Remove(round);
            if (!kept.IsEmpty)
                _inFlight.Add(kept);
            Add(later, fullScan: false, round.Since ?? clock.GetUtcNow());
        }
        return kept;
    }

    /// <summary>The round is done: what failed (path and cause) is scheduled again, one more attempt each (with the room it
    /// needs, from <paramref name="spaceNeeded"/>, when that was the cause); what was <paramref name="held"/> back for room
    /// keeps its record and is asked about again later; every other path of the round (or, with <paramref name="everything"/>,
    /// every path retried so far) succeeded.</summary>
    public void Complete(PushRound round, IReadOnlyDictionary<string, string> failed, bool everything = false,
        IReadOnlyDictionary<string, long>? spaceNeeded = null, IReadOnlySet<string>? held = null)
    {
        var now = clock.GetUtcNow();
        lock (_lock)
        {
            _inFlight.Remove(round);
            foreach (string path in everything ? _retries.Keys.ToList() : round.Paths)
                if (!failed.ContainsKey(path) && held?.Contains(path) != true)
                    _retries.Remove(path);
            foreach (var (path, error) in failed)
            {
                _retries.TryGetValue(path, out var known);
                int attempts = (known?.Attempts ?? 0) + 1;
                long? needed = spaceNeeded?.TryGetValue(path, out long n) == true ? n : null;
                var delay = needed is not null ? maxRetryDelay : TimeSpan.FromTicks(Math.Min(retryDelay.Ticks << Math.Min(attempts - 1, 30), maxRetryDelay.Ticks));
                _retries[path] = new Retry(attempts, now + delay, known?.Since ?? round.Since ?? now, error, needed, needed is null ? null : now + retryDelay);
            }
            foreach (string path in held ?? Enumerable.Empty<string>())
                if (_retries.TryGetValue(path, out var known))
                    _retries[path] = known with { Ask = now + retryDelay };
        }
    }

    /// <summary>The paths waiting for room on the passive, with the free space each needs: until their scheduled try they
    /// are sent only if the passive reports it.</summary>
    public IReadOnlyDictionary<string, long> SpaceWaits
    {
        get
        {
            var now = clock.GetUtcNow();
            lock (_lock)
                return _retries.Where(r => r.Value.SpaceNeeded is not null && r.Value.Due > now)
                    .ToDictionary(r => r.Key, r => r.Value.SpaceNeeded!.Value, StringComparer.Ordinal);
        }
    }

    /// <summary>Every retry is due now (an admin settled something: SIGHUP, hasync resolve).</summary>
    public void RetryNow()
    {
        var now = clock.GetUtcNow();
        lock (_lock)
            foreach (var (path, retry) in _retries.ToList())
                _retries[path] = retry with { Due = now, Ask = null };
    }

    /// <summary>Forgets everything (the node stopped being active: the next term starts with a resync).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _dirty.Clear();
            _fullScan = false;
            _dirtySince = null;
            _inFlight.Clear();
            _retries.Clear();
        }
    }

    /// <summary>True when a round would find work now.</summary>
    public bool HasWork
    {
        get
        {
            var now = clock.GetUtcNow();
            lock (_lock)
                return _dirty.Count > 0 || _fullScan || _retries.Values.Any(r => r.Next <= now);
        }
    }

    /// <summary>When the next retry is due; null when none is waiting.</summary>
    public DateTimeOffset? NextRetry
    {
        get
        {
            lock (_lock)
                return _retries.Count == 0 ? null : _retries.Values.Min(r => r.Next);
        }
    }

    /// <summary>The failing paths and their records.</summary>
    public IReadOnlyDictionary<string, Retry> Retries
    {
        get
        {
            lock (_lock)
                return new Dictionary<string, Retry>(_retries, StringComparer.Ordinal);
        }
    }

    /// <summary>Paths not yet on the passive: dirty, in flight or failing (a full scan counts as one), but for
    /// <paramref name="except"/> (conflicts, which are counted on their own).</summary>
    public int Count(IReadOnlySet<string>? except = null)
    {
        lock (_lock)
        {
            var paths = new HashSet<string>(_dirty, StringComparer.Ordinal);
            paths.UnionWith(_retries.Keys);
            foreach (var round in _inFlight)
                paths.UnionWith(round.Paths);
            if (except is not null)
                paths.ExceptWith(except);
            return paths.Count + (_fullScan || _inFlight.Any(r => r.FullScan) ? 1 : 0);
        }
    }

    /// <summary>When the oldest change not yet on the passive happened (queued, in flight or failing); null when none waits.</summary>
    public DateTimeOffset? OldestPending
    {
        get
        {
            lock (_lock)
            {
                DateTimeOffset? oldest = _dirtySince;
                foreach (var since in _retries.Values.Select(r => (DateTimeOffset?)r.Since).Concat(_inFlight.Select(r => r.Since)))
                    if (since is { } s && (oldest is null || s < oldest))
                        oldest = s;
                return oldest;
            }
        }
    }
}
