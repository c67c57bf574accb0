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

    /// <summary>Starts over from a manifest.</summary>
    public void Reset(IEnumerable<FileEntry> manifest)
    {
        _entries.Clear();
        _paths.Clear();
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
            return; // the passive kept what it had (writes are atomic)
        if (difference.Active is { } now)
            Set(now);
        else if (_entries.Remove(difference.Path))
            _paths.Remove(difference.Path);
    }

    private void Set(FileEntry entry)
    {
        _entries[entry.Path] = entry;
        _paths.Add(entry.Path);
    }
}
