using HaSync.Scanning;

namespace HaSync.Watching;

/// <summary>Tuning of <see cref="ChangeAggregator"/>.</summary>
public sealed record AggregatorOptions
{
    /// <summary>A path is ready once it has had no event for this long.</summary>
    public TimeSpan QuietWindow { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>A path whose last event says its writer is done with it (a file closed after writing, or renamed into
    /// place) is ready after this much instead: time for the event that often follows at once (the rename of a file just
    /// closed) to come in the same batch.</summary>
    public TimeSpan SettleWindow { get; init; } = TimeSpan.FromMilliseconds(2);
    /// <summary>A path that keeps changing is ready this long after its first event all the same.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>More pending paths than this in one directory, their writers not known to be done, become one pending
    /// directory (scanned whole once it is quiet).</summary>
    public int DirectoryLimit { get; init; } = 1024;
    /// <summary>More pending paths than this in all, their writers not known to be done, become one scan of the whole watched set.</summary>
    public int TotalLimit { get; init; } = 4096;
}

/// <summary>Paths ready to be scanned and pushed. <see cref="FullScan"/>: everything is (then <see cref="Paths"/> is empty).
/// Removed paths come last, so a rename reaches the passive as "new name, then old one gone".</summary>
public sealed record ChangeBatch(IReadOnlyList<string> Paths, bool FullScan, DateTimeOffset OldestEvent)
{
    /// <summary>Nothing to do.</summary>
    public bool IsEmpty => Paths.Count == 0 && !FullScan;
}

/// <summary>
/// Turns a stream of watch events into batches of paths worth scanning, in the manner of syncthing's
/// watchaggregator: a path is ready after a quiet window without events, or after a maximum delay even if it
/// keeps changing; a file whose writer is done with it (closed after writing, renamed into place) after a settle window
/// of a few milliseconds; many paths still being written in one directory escalate to the directory, many in all to a
/// full scan. Paths whose writers are done do not count: they are handed on within the settle window, and a burst of
/// files written and closed (a tar x, a package upgrade) escalated would wait out the quiet window after its last
/// file and then scan the whole directory, or the whole watched set, for what was already known path by path. Time
/// comes from the injected <see cref="TimeProvider"/>. Not thread-safe: one loop owns it.
/// </summary>
public sealed class ChangeAggregator(TimeProvider clock, AggregatorOptions? options = null)
{
    private readonly AggregatorOptions _options = options ?? new AggregatorOptions();
    private readonly Dictionary<string, PendingPath> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _unsettledIn = new(StringComparer.Ordinal); // per directory: pending paths not Final
    private int _unsettled; // in all
    // Per directory: pending paths anywhere below it. A new path absorbs what is pending below it, and in a burst of
    // thousands of files a pass over every pending path for each new one (to find none below a file) was quadratic.
    private readonly Dictionary<string, int> _pendingBelow = new(StringComparer.Ordinal);
    private PendingPath? _fullScan;
    // No pending path is ready before this (a lower bound: a path touched again only gets later): during a burst the loop
    // asks after every event, and a pass over every pending path each time was most of the daemon's work.
    private DateTimeOffset _noneReadyBefore = DateTimeOffset.MaxValue;

    private sealed class PendingPath(DateTimeOffset now)
    {
        public DateTimeOffset First { get; set; } = now;
        public DateTimeOffset Last { get; set; } = now;
        public bool Removed { get; set; }
        public bool Final { get; set; } // the last event said the path's writer is done with it
        public bool Counted { get; set; } // in the unsettled counts (see CountUnsettled)

        public void Touch(DateTimeOffset now, bool removed, bool final = false)
        {
            Last = now;
            Removed = removed;
            Final = final;
        }
    }

    /// <summary>Pending paths (a pending full scan counts as one).</summary>
    public int Count => _fullScan is null ? _pending.Count : 1;

    /// <summary>When the oldest pending event happened, if any is pending.</summary>
    public DateTimeOffset? OldestEvent => _fullScan?.First ?? (_pending.Count == 0 ? null : _pending.Values.Min(p => p.First));

    /// <summary>Records an event, seen now.</summary>
    public void Add(WatchEvent e) => Add(e, clock.GetUtcNow());

    /// <summary>Records an event seen at <paramref name="now"/>: the caller reads the clock once for all the events it
    /// read at once (in a burst, a clock read per event was 6 to 7 % of the daemon's time on this VM's clock).</summary>
    public void Add(WatchEvent e, DateTimeOffset now)
    {
        if (_fullScan is not null)
        {
            _fullScan.Touch(now, false);
            return;
        }
        if (e.Kind == WatchEventKind.Overflow)
        {
            EscalateToFullScan(now);
            return;
        }
        // Removals keep the quiet window: an editor that moves the old file away before it writes the new one would
        // otherwise have it missing on the passive for a moment.
        bool removed = e.Kind == WatchEventKind.Removed, final = e.Kind == WatchEventKind.Completed;
        string path = e.Path;
        if (PendingAncestor(e.Path) is { } ancestor)
        {
            (path, var pending) = ancestor;
            pending.Touch(now, pending.Removed && removed);
        }
        else if (_pending.TryGetValue(path, out var known))
        {
            known.Touch(now, removed, final);
            NoteDue(known);
        }
        else
        {
            AbsorbDescendants(path, out var first);
            NoteDue(Remember(path, new PendingPath(first ?? now) { Last = now, Removed = removed, Final = final }));
        }
        var touched = _pending[path];
        if (!CountUnsettled(path, touched, unsettled: !touched.Final))
            return;
        string parent = TreeWalker.Parent(path);
        if (_unsettled > _options.TotalLimit)
            EscalateToFullScan(now);
        else if (parent != path && _unsettledIn[parent] > _options.DirectoryLimit)
            EscalateToDirectory(parent, now);
    }

    /// <summary>Counts <paramref name="path"/> as unsettled (its writer may not be done), or no longer; true when it now counts and did not.</summary>
    private bool CountUnsettled(string path, PendingPath p, bool unsettled)
    {
        if (p.Counted == unsettled)
            return false;
        p.Counted = unsettled;
        string parent = TreeWalker.Parent(path);
        int delta = p.Counted ? 1 : -1, inParent = _unsettledIn.GetValueOrDefault(parent) + delta;
        _unsettled += delta;
        if (inParent == 0)
            _unsettledIn.Remove(parent);
        else
            _unsettledIn[parent] = inParent;
        return p.Counted;
    }

    /// <summary>Puts <paramref name="path"/> in the pending set (not yet in the unsettled counts: see <see cref="CountUnsettled"/>).</summary>
    private PendingPath Remember(string path, PendingPath p)
    {
        _pending[path] = p;
        CountBelow(path, 1);
        return p;
    }

    /// <summary>Takes <paramref name="path"/> out of the pending set (and the counts).</summary>
    private void Forget(string path, PendingPath p)
    {
        _pending.Remove(path);
        CountBelow(path, -1);
        CountUnsettled(path, p, unsettled: false);
    }

    private void CountBelow(string path, int delta)
    {
        for (string dir = path; dir != "/";)
        {
            dir = TreeWalker.Parent(dir);
            int below = _pendingBelow.GetValueOrDefault(dir) + delta;
            if (below == 0)
                _pendingBelow.Remove(dir);
            else
                _pendingBelow[dir] = below;
        }
    }

    /// <summary>The paths that are ready now, removed ones last; null when none is.</summary>
    public ChangeBatch? TakeReady()
    {
        var now = clock.GetUtcNow();
        if (now < _noneReadyBefore)
            return null;
        if (_fullScan is not null)
        {
            if (!IsReady(_fullScan, now))
            {
                _noneReadyBefore = Due(_fullScan);
                return null;
            }
            var batch = new ChangeBatch([], true, _fullScan.First);
            _fullScan = null;
            _noneReadyBefore = DateTimeOffset.MaxValue;
            return batch;
        }
        var ready = new List<KeyValuePair<string, PendingPath>>();
        _noneReadyBefore = DateTimeOffset.MaxValue;
        foreach (var entry in _pending)
        {
            if (IsReady(entry.Value, now))
                ready.Add(entry);
            else
                NoteDue(entry.Value);
        }
        return ready.Count == 0 ? null : Take(ready);
    }

    /// <summary>Everything pending, ready or not (at shutdown).</summary>
    public ChangeBatch TakeAll()
    {
        _noneReadyBefore = DateTimeOffset.MaxValue;
        if (_fullScan is not null)
        {
            var batch = new ChangeBatch([], true, _fullScan.First);
            _fullScan = null;
            return batch;
        }
        return _pending.Count == 0 ? new ChangeBatch([], false, clock.GetUtcNow()) : Take(_pending.ToList());
    }

    /// <summary>How long until something may become ready (it may be later: ask <see cref="TakeReady"/> then); null when
    /// nothing is pending.</summary>
    public TimeSpan? NextReadyIn()
    {
        if (Count == 0)
            return null;
        var due = _noneReadyBefore - clock.GetUtcNow();
        return due < TimeSpan.Zero ? TimeSpan.Zero : due;
    }

    private bool IsReady(PendingPath p, DateTimeOffset now) => now >= Due(p);

    private DateTimeOffset Due(PendingPath p) => Min(p.Last + Window(p), p.First + _options.MaxDelay);

    private void NoteDue(PendingPath p) => _noneReadyBefore = Min(_noneReadyBefore, Due(p));

    private TimeSpan Window(PendingPath p) => p.Final ? _options.SettleWindow : _options.QuietWindow;

    private ChangeBatch Take(List<KeyValuePair<string, PendingPath>> ready)
    {
        foreach (var (path, p) in ready)
            Forget(path, p);
        var paths = ready.OrderBy(p => p.Value.Removed).ThenBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key).ToList();
        return new ChangeBatch(paths, false, ready.Min(p => p.Value.First));
    }

    private void EscalateToFullScan(DateTimeOffset now)
    {
        var first = _pending.Count == 0 ? now : _pending.Values.Min(p => p.First);
        _pending.Clear();
        _pendingBelow.Clear();
        _unsettledIn.Clear();
        _unsettled = 0;
        _fullScan = new PendingPath(first) { Last = now };
        NoteDue(_fullScan);
    }

    private void EscalateToDirectory(string directory, DateTimeOffset now)
    {
        AbsorbDescendants(directory, out var first);
        if (_pending.TryGetValue(directory, out var known))
            known.Touch(now, false);
        else
            NoteDue(Remember(directory, new PendingPath(first ?? now) { Last = now }));
        CountUnsettled(directory, _pending[directory], unsettled: true); // in its own parent: escalations go no further up than that
    }

    /// <summary>Removes the pending paths below <paramref name="directory"/> (its scan covers them); the earliest first event among them.</summary>
    private void AbsorbDescendants(string directory, out DateTimeOffset? first)
    {
        first = null;
        if (!_pendingBelow.ContainsKey(directory))
            return;
        string prefix = directory == "/" ? "/" : directory + "/";
        foreach (var (path, p) in _pending.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal) && p.Key != directory).ToList())
        {
            first = first is null || p.First < first ? p.First : first;
            Forget(path, p);
        }
    }

    private (string Path, PendingPath Pending)? PendingAncestor(string path)
    {
        for (string p = TreeWalker.Parent(path); ; p = TreeWalker.Parent(p))
        {
            if (_pending.TryGetValue(p, out var ancestor))
                return (p, ancestor);
            if (p == "/")
                return null;
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
