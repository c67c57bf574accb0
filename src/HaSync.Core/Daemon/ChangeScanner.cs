using HaSync.Configuration;
using HaSync.Scanning;
using HaSync.Sync;

namespace HaSync.Daemon;

/// <summary>
/// The daemon's scan step: events say where, this says what. For each dirty path it describes what the active
/// holds now (lstat, and a hash unless the cache knows this exact version) and compares it with what the
/// passive last acknowledged. A directory on either side is compared with everything below it, so a new
/// directory, a directory renamed in or away, and files written before a watch existed are all found.
/// </summary>
public sealed class ChangeScanner(HaSyncConfig config, HashCache cache)
{
    private readonly PathFilter _exclude = new(config.Exclude);

    /// <summary>The differences at <paramref name="paths"/> (or everywhere, for a full scan). Paths the active cannot
    /// read go to <paramref name="onUnreadable"/> and are left out on both sides: their absence is not a delete.
    /// <paramref name="keptMode"/>: the mode bits the passive keeps. A parent directory whose own entry a push still in flight
    /// compared (<paramref name="busy"/>) is not compared against a belief that push is about to change: it goes to
    /// <paramref name="parentsOwed"/>, whose directories a later round compares (and takes out) in its stead.</summary>
    public List<PathDifference> Compare(IReadOnlyCollection<string> paths, bool fullScan, PassiveState passive, uint keptMode, Action<string, IOException> onUnreadable,
        IReadOnlySet<string>? busy = null, ISet<string>? parentsOwed = null)
    {
        var active = new SortedDictionary<string, FileEntry>(StringComparer.Ordinal);
        var known = new SortedDictionary<string, FileEntry>(StringComparer.Ordinal);
        var unreadable = new List<string>();
        void Unreadable(string path, IOException e)
        {
            unreadable.Add(path);
            onUnreadable(path, e);
        }
        void WalkActive(IEnumerable<string> roots)
        {
            foreach (var e in TreeWalker.Walk(config.SourceRoot, roots, _exclude, cache: cache, onUnreadable: Unreadable))
                active[e.Path] = e;
        }

        if (fullScan)
        {
            WalkActive(config.Paths);
            foreach (var e in passive.All())
                known[e.Path] = e;
            parentsOwed?.Clear();
        }
        else
        {
            var roots = Roots(paths);
            foreach (string path in roots)
            {
                FileEntry? now;
                try
                {
                    now = _exclude.Matches(path) ? null : PosixFiles.Describe(TreeWalker.FullPath(config.SourceRoot, path), path, cache: cache);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Unreadable(path, e as IOException ?? new IOException($"{path}: {e.Message}", e));
                    continue;
                }
                var before = passive.Get(path);
                if (now?.Kind == EntryKind.Directory || before?.Kind == EntryKind.Directory)
                {
                    WalkActive([path]);
                    foreach (var e in passive.Subtree(path))
                        known[e.Path] = e;
                    continue;
                }
                if (now is not null)
                    active[path] = now;
                if (before is not null)
                    known[path] = before;
            }
            // A change made, renamed or removed an entry of its directory, whose time moved with it: that directory's own
            // entry (not what is below it) is compared too, when it is in the watched set.
            var parents = roots.Select(TreeWalker.Parent).ToHashSet(StringComparer.Ordinal);
            if (parentsOwed is not null)
                parents.UnionWith(parentsOwed);
            foreach (string parent in parents)
            {
                if (parentsOwed is not null && busy?.Contains(parent) == true)
                {
                    parentsOwed.Add(parent);
                    continue;
                }
                parentsOwed?.Remove(parent);
                if (active.ContainsKey(parent) || known.ContainsKey(parent) || !config.Paths.Any(listed => TreeWalker.Within(parent, listed)))
                    continue;
                FileEntry? now;
                try
                {
                    now = PosixFiles.Describe(TreeWalker.FullPath(config.SourceRoot, parent), parent);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue; // its own event, or the next scan of it, says what became of it
                }
                if (now is { Kind: EntryKind.Directory } && passive.Get(parent) is { Kind: EntryKind.Directory } before)
                    (active[parent], known[parent]) = (now, before);
            }
        }
        foreach (string path in unreadable)
            foreach (var e in known.Keys.Where(k => TreeWalker.Within(k, path)).ToList())
                known.Remove(e);
        return Comparison.Compare(active.Values.ToList(), known.Values.ToList(), keptMode);
    }

    /// <summary>The dirty paths, inside the watched set: a directory above listed paths (an aggregator's escalation) stands for
    /// the listed paths below it.</summary>
    public SortedSet<string> Roots(IEnumerable<string> paths)
    {
        var roots = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string path in paths)
        {
            if (config.Paths.Any(listed => TreeWalker.Within(path, listed)))
                roots.Add(path);
            else
                roots.UnionWith(config.Paths.Where(listed => TreeWalker.Within(listed, path)));
        }
        return roots;
    }
}
