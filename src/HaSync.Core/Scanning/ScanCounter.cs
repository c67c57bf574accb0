namespace HaSync.Scanning;

/// <summary>What one side of a compare has described so far: entries, and bytes of the files among them.</summary>
public readonly record struct ScanCount(long Entries, long Bytes, bool Done);

/// <summary>Counts what a walk describes as it goes, on the walk's thread; read from another (the progress reporter).</summary>
public sealed class ScanCounter
{
    private long _entries, _bytes;
    private volatile bool _done;

    /// <summary>One more entry described.</summary>
    public void Add(FileEntry entry)
    {
        Interlocked.Increment(ref _entries);
        if (entry.Kind == EntryKind.File)
            Interlocked.Add(ref _bytes, entry.Size);
    }

    /// <summary>The walk is over.</summary>
    public void Finish() => _done = true;

    /// <summary>The count now.</summary>
    public ScanCount Now => new(Interlocked.Read(ref _entries), Interlocked.Read(ref _bytes), _done);
}
