using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>
/// What one target's passive holds in the watched set, as far as we know: its manifest at the last resync,
/// then every write it acknowledged. The daemon compares fresh scans against this instead of asking the
/// passive each time. Owned by one target's push loop.
/// </summary>
public sealed class PassiveState
{
    private readonly Dictionary<string, FileEntry> _entries = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _paths = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _uncertain = new(StringComparer.Ordinal); // a push there was not acknowledged as done

    /// <summary>Paths where a push was not acknowledged as done (failed, refused, a conflict): what the passive holds
    /// there is not known until <see cref="Relearn"/> is told.</summary>
    public IReadOnlyCollection<string> Uncertain => _uncertain;

    /// <summary>Starts over from a manifest.</summary>
    public void Reset(IEnumerable<FileEntry> manifest)
    {
        _entries.Clear();
        _paths.Clear();
        _uncertain.Clear();
        foreach (var entry in manifest)
            Set(entry);
    }

    /// <summary>Paths known.</summary>
    public int Count => _entries.Count;

    /// <summary>The entry at <paramref name="path"/>, if the passive has one.</summary>
    public FileEntry? Get(string path) => _entries.GetValueOrDefault(path);

    /// <summary><paramref name="path"/> and everything below it, in path order.</summary>
    public IEnumerable<FileEntry> Subtree(string path)
    {
        if (path == "/")
            return All();
        var below = _paths.GetViewBetween(path + "/", path + "/\uffff");
        return (_entries.TryGetValue(path, out var self) ? [self] : Enumerable.Empty<FileEntry>()).Concat(below.Select(p => _entries[p]));
    }

    /// <summary>Everything, in path order.</summary>
    public IEnumerable<FileEntry> All() => _paths.Select(p => _entries[p]);

    /// <summary>Takes in the outcome of one push: what the passive acknowledged now stands there.</summary>
    public void Record(PathDifference difference, Ack ack)
    {
        if (ack.Status != AckStatus.Ok)
        {
            // Writes are atomic, so the passive most likely kept what it had; but a change can be made and still fail
            // (its file system could not confirm it), and a conflict is what the passive made of the path itself.
            _uncertain.Add(difference.Path);
            return;
        }
        if (difference.Active is { } now)
            Set(now);
        else
            Remove(difference.Path);
    }

    /// <summary>Replaces what is known at and below <paramref name="roots"/> with the passive's <paramref name="manifest"/>
    /// of them; returns where the two differed (<see cref="PathDifference.Active"/>: what was believed,
    /// <see cref="PathDifference.Passive"/>: what the passive holds).</summary>
    public List<PathDifference> Relearn(IReadOnlyList<string> roots, IReadOnlyList<FileEntry> manifest)
    {
        var cover = TreeWalker.Cover(roots);
        var covered = cover.ToHashSet(StringComparer.Ordinal);
        var believed = cover.SelectMany(Subtree).OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
        var held = manifest.Where(e => TreeWalker.WithinAny(e.Path, covered)).OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
        var drift = Comparison.Compare(believed, held).Where(d => d.Status != PathStatus.Identical).ToList();
        foreach (var entry in believed)
            Remove(entry.Path);
        foreach (var entry in held)
            Set(entry);
        _uncertain.RemoveWhere(path => TreeWalker.WithinAny(path, covered));
        return drift;
    }

    private void Remove(string path)
    {
        if (_entries.Remove(path))
            _paths.Remove(path);
    }

    private void Set(FileEntry entry)
    {
        _entries[entry.Path] = entry;
        _paths.Add(entry.Path);
    }
}
