using System.Text;
using System.Text.Json;
using HaSync.Delta;
using HaSync.Interop;
using HaSync.Scanning;
using Mono.Unix.Native;

namespace HaSync.Guard;

/// <summary>How a path on the passive stands against what HaSync last wrote there (the agent's journal).</summary>
public enum LocalChange : byte
{
    /// <summary>As HaSync wrote it (or a directory, or absent: nothing of the passive's own to lose).</summary>
    None = 0,
    /// <summary>Changed on the passive since HaSync last wrote it.</summary>
    Edited = 1,
    /// <summary>Never written by HaSync (found there on first contact).</summary>
    Unrecorded = 2,
}

/// <summary>One line of the journal file.</summary>
internal sealed record JournalLine
{
    /// <summary>"intent" (about to be renamed into place), "wrote" (in place, with its version) or "removed".</summary>
    public required string Op { get; init; }
    public required string Path { get; init; }
    /// <summary>Content hash (hex) of a file, or "-> target" of a symlink.</summary>
    public string? Fingerprint { get; init; }
    public long Ino { get; init; }
    public long Size { get; init; }
    public long Mtime { get; init; }
    public long MtimeNs { get; init; }
    public long Ctime { get; init; }
    public long CtimeNs { get; init; }
}

/// <summary>
/// The agent's memory of what it wrote on the passive, per path: the content hash (or link target) and the exact
/// version (inode, size, mtime, ctime) it left. A file that no longer matches was changed locally: a conflict, not
/// something to overwrite. The version makes the usual check one lstat; only a file whose version moved is hashed
/// (a touch or chmod alone is no conflict). An "intent" line is written, and made durable with the batch, before
/// a file is renamed into place, so a crash between rename and record leaves either content acceptable; the record of
/// what was renamed is written after it but made durable only with the next batch's intents (or at the end of the session):
/// an ack does not wait for it.
/// The file (<c>journal.jsonl</c>, append-only, compacted when mostly superseded) is shared by every agent session
/// on the node, under a flock, and re-read when another session has appended to it.
/// </summary>
public sealed class Journal : IDisposable
{
    private sealed record Recorded(string Fingerprint, string? Pending, Stat? Version);

    private readonly string _path;
    private readonly string _lockPath;
    private readonly Dictionary<string, Recorded> _records = new(StringComparer.Ordinal);
    private readonly List<JournalLine> _unwritten = [];
    private readonly FileStream _lockFile; // open for the session: each flush is then one flock and one unlock
    private FileStream _file;
    private (ulong Dev, ulong Ino) _identity; // of the file open, to see when another session's compaction replaced it
    private readonly byte[] _key = [];  // keys the fingerprints: see FingerprintOf
    private bool _upgraded; // lines of an older hasync were read: compact, so the file holds keyed fingerprints only
    private long _readTo;  // bytes of the file taken in
    private long _synced;  // bytes of the file known to be on disk
    private int _lines;    // lines in the file, for compaction

    /// <summary>Opens (or creates) the journal in <paramref name="stateDirectory"/> and reads it.</summary>
    public Journal(string stateDirectory)
    {
        _path = System.IO.Path.Combine(stateDirectory, "journal.jsonl");
        _lockPath = System.IO.Path.Combine(stateDirectory, "journal.lock");
        try
        {
            StateDirectory.Ensure(stateDirectory);
            _lockFile = new FileStream(_lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            using var held = Lock();
            _key = LoadKey(System.IO.Path.Combine(stateDirectory, "journal.key"));
            bool existed = File.Exists(_path);
            _file = Open(out long size);
            if (!existed)
                Libc.FsyncDirectory(stateDirectory); // the batches fsync the journal's data, not its name
            ReadNew(size);
            if (MostlySuperseded || _upgraded)
                Compact();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _file?.Dispose();
            _lockFile?.Dispose();
            throw new IOException($"{_path}: cannot open the journal: {e.Message}", e);
        }
    }

    private bool MostlySuperseded => _lines > 10_000 && _lines > 4 * _records.Count;

    /// <summary>The journal file.</summary>
    public string FilePath => _path;

    /// <summary>Paths recorded.</summary>
    public int Count => _records.Count;

    /// <summary>The fingerprint the journal compares: a file's hash keyed with this node's secret (so the journal says
    /// nothing of a small secret file's content, even to someone who reads it), a symlink's target; null for a directory.</summary>
    public string? FingerprintOf(FileEntry entry) => entry.Kind switch
    {
        EntryKind.File => entry.Hash is null ? null : KeyedOnce(entry.Hash),
        EntryKind.Symlink => "-> " + entry.LinkTarget,
        _ => null,
    };

    private const string KeyedPrefix = "k2:";

    // The fingerprints keyed since the last flush, by content hash: a file written is keyed for its intent, for its record
    // once renamed, and for the check before (a MAC and a string each time).
    private readonly Dictionary<byte[], string> _keyedSinceFlush = new(ContentHashComparer.Instance);

    private string KeyedOnce(byte[] contentHash)
    {
        if (_keyedSinceFlush.TryGetValue(contentHash, out string? keyed))
            return keyed;
        if (_keyedSinceFlush.Count >= 16384)
            _keyedSinceFlush.Clear(); // checks with no write to flush: bounded all the same
        _keyedSinceFlush[contentHash] = keyed = Keyed(contentHash);
        return keyed;
    }

    private sealed class ContentHashComparer : IEqualityComparer<byte[]>
    {
        public static readonly ContentHashComparer Instance = new();
        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(byte[] hash) => hash.Length >= 4 ? BitConverter.ToInt32(hash) : hash.Length; // a hash's bytes are spread already
    }

    private string Keyed(ReadOnlySpan<byte> contentHash)
    {
        var mac = new Blake2b(_key);
        mac.Update(contentHash);
        Span<byte> digest = stackalloc byte[Blake2b.HashLength];
        mac.Finish(digest);
        return KeyedPrefix + Convert.ToHexStringLower(digest);
    }

    /// <summary>Before "k2:", fingerprints were HMAC-SHA256 under the same key: such a record still names HaSync's content
    /// (computed only when a record holds one, until the path is written again).</summary>
    private const string HmacPrefix = "k1:";

    private bool Matches(string recorded, string fingerprint, FileEntry current) =>
        recorded == fingerprint || recorded.StartsWith(HmacPrefix, StringComparison.Ordinal) && current.Hash is { } hash
        && recorded == HmacPrefix + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(_key, hash));

    /// <summary>A fingerprint as an older hasync wrote it (the bare content hash) keyed as this one does; true when it was.</summary>
    private bool Upgrade(ref string fingerprint)
    {
        if (fingerprint.Length != 64 || !fingerprint.All(Uri.IsHexDigit))
            return false;
        fingerprint = Keyed(Convert.FromHexString(fingerprint));
        return true;
    }

    /// <summary>This node's secret for the fingerprints (state_dir/journal.key, 0600), made on first use; under the lock.</summary>
    private static byte[] LoadKey(string path)
    {
        if (File.Exists(path))
        {
            byte[] key = File.ReadAllBytes(path);
            return key.Length == 32 ? key : throw new IOException($"{path}: not a journal key ({key.Length} bytes, expected 32): remove it, the journal starts over");
        }
        byte[] fresh = HaSync.Interop.Libc.RandomBytes(32);
        using (var file = HaSync.Apply.AtomicFile.Create(path, privateUntilCommit: true))
        {
            file.Stream.Write(fresh);
            file.Commit();
        }
        return fresh;
    }

    /// <summary>How <paramref name="current"/> (the passive's entry, hashed) stands against the journal.</summary>
    public LocalChange Check(FileEntry current)
    {
        string? fingerprint = FingerprintOf(current);
        if (fingerprint is null)
            return LocalChange.None;
        var state = Compare(current, fingerprint);
        if (state != LocalChange.None && RefreshFromOthers())
            state = Compare(current, fingerprint); // another session may have written it meanwhile
        return state;
    }

    /// <summary>How the passive's <paramref name="fullPath"/> stands; the cheap way first (its version is the one we left).
    /// <paramref name="current"/> is its entry when it had to be read (null when absent, or known by version).</summary>
    public LocalChange Check(string logicalPath, string fullPath, out FileEntry? current)
    {
        current = null;
        return PosixFiles.TryLstat(fullPath, out var st) ? Check(logicalPath, st, () => PosixFiles.Describe(fullPath, logicalPath), out current) : LocalChange.None;
    }

    /// <summary>As <see cref="Check(string, string, out FileEntry?)"/>, with the entry's lstat already taken and
    /// <paramref name="describe"/> to read it when its version is not the one HaSync left (the agent reads through
    /// the entry's directory descriptor).</summary>
    public LocalChange Check(string logicalPath, Stat st, Func<FileEntry?> describe, out FileEntry? current)
    {
        current = null;
        if (PosixFiles.KindOf(st) is not (EntryKind.File or EntryKind.Symlink))
            return LocalChange.None;
        if (_records.TryGetValue(logicalPath, out var recorded) && recorded.Version is { } version && PosixFiles.SameVersion(version, st))
            return LocalChange.None;
        current = describe();
        return current is null ? LocalChange.None : Check(current);
    }

    private LocalChange Compare(FileEntry current, string fingerprint) =>
        !_records.TryGetValue(current.Path, out var r) ? LocalChange.Unrecorded
        : Matches(r.Fingerprint, fingerprint, current) || r.Pending is { } pending && Matches(pending, fingerprint, current) ? LocalChange.None
        : LocalChange.Edited;

    /// <summary>Notes that <paramref name="entry"/> is about to be renamed into place (before the batch's first sync).</summary>
    public void Intend(FileEntry entry)
    {
        string fingerprint = FingerprintOf(entry)!;
        var line = new JournalLine { Op = "intent", Path = entry.Path, Fingerprint = fingerprint };
        _records[entry.Path] = _records.TryGetValue(entry.Path, out var r) ? r with { Pending = fingerprint } : new Recorded(fingerprint, fingerprint, null);
        _unwritten.Add(line);
    }

    /// <summary>Records that <paramref name="entry"/> now stands on the passive, as HaSync wrote it, in the version
    /// <paramref name="version"/> (its lstat just after the write; null if it could not be taken).</summary>
    public void Wrote(FileEntry entry, Stat? version)
    {
        string? fingerprint = FingerprintOf(entry);
        if (fingerprint is null)
            return;
        _records[entry.Path] = new Recorded(fingerprint, null, version);
        _unwritten.Add(Line("wrote", entry.Path, fingerprint, version));
    }

    /// <summary>Records that HaSync removed <paramref name="path"/>.</summary>
    public void Removed(string path)
    {
        if (_records.Remove(path))
            _unwritten.Add(new JournalLine { Op = "removed", Path = path });
    }

    /// <summary>Appends what was recorded since the last call; with <paramref name="durable"/>, on disk when it returns
    /// (an fsync of the journal alone).</summary>
    /// <exception cref="IOException">The journal could not be written or flushed.</exception>
    public void Flush(bool durable = false)
    {
        if (_unwritten.Count == 0)
        {
            if (durable && _synced < _readTo)
                Sync();
            return;
        }
        byte[] bytes = GuardJson.Write(_unwritten);
        using (Lock())
        {
            TakeInOthers(out long size); // others' lines first, so ours stay the latest word on our paths
            if (size > _readTo)
                Write("\n"u8, ref size); // a last line torn by a crash is ended, or ours would be read as its end
            Write(bytes, ref size);
            _readTo = size;
            if (durable)
                Sync();
            _lines += _unwritten.Count;
            _unwritten.Clear();
            _keyedSinceFlush.Clear();
            if (MostlySuperseded)
                Compact(); // a long-lived session writing the same files again and again
        }
    }

    private void Write(ReadOnlySpan<byte> bytes, ref long offset)
    {
        RandomAccess.Write(_file.SafeFileHandle, bytes, offset);
        offset += bytes.Length;
    }

    private void Sync()
    {
        _file.Flush(flushToDisk: true);
        _synced = _readTo;
    }

    /// <summary>Takes in lines other sessions appended; true when there were any.</summary>
    private bool RefreshFromOthers()
    {
        using var held = Lock();
        return TakeInOthers(out _);
    }

    /// <summary>Under the lock: reads what other sessions appended (reopening a compacted file), then puts back what
    /// this session recorded and has not written yet. True when anything was read; <paramref name="size"/> is the
    /// file's size.</summary>
    private bool TakeInOthers(out long size)
    {
        // One lstat: the path still names the file open (then its size is the open file's), or a compaction replaced it.
        bool replaced = !PosixFiles.TryLstat(_path, out var onDisk) || (onDisk.st_dev, onDisk.st_ino) != _identity;
        if (replaced)
            Reopen(out size);
        else
            size = onDisk.st_size;
        bool any = replaced | ReadNew(size) > 0;
        foreach (var line in _unwritten)
            Take(line);
        return any;
    }

    /// <summary>Takes in the whole lines between what was read and <paramref name="size"/>; a torn last line is left.
    /// Read a chunk at a time: a journal of a few thousand files is most of a megabyte, which in one buffer is that much
    /// fresh memory at every agent's start (on a VM, 15 us a page to fault in).</summary>
    private int ReadNew(long size)
    {
        var pool = System.Buffers.ArrayPool<byte>.Shared;
        byte[] buffer = pool.Rent(ReadChunk);
        int count = 0, held = 0; // held: a line not ended yet, at the front of the buffer (it starts at _readTo)
        try
        {
            for (long next = _readTo; next < size;)
            {
                if (held == buffer.Length) // a line longer than the buffer (a damaged one): a longer buffer
                {
                    byte[] longer = pool.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, held).CopyTo(longer);
                    pool.Return(buffer);
                    buffer = longer;
                }
                int read = RandomAccess.Read(_file.SafeFileHandle, buffer.AsSpan(held, (int)Math.Min(buffer.Length - held, size - next)), next);
                if (read == 0)
                    break; // shorter than its lstat said: what is there is taken
                next += read;
                var filled = buffer.AsSpan(0, held + read);
                int start = 0;
                for (int end; (end = filled[start..].IndexOf((byte)'\n')) >= 0; start += end + 1)
                {
                    if (end == 0)
                        continue;
                    JournalLine? line;
                    try
                    {
                        line = GuardJson.ReadJournalLine(filled.Slice(start, end));
                    }
                    catch (JsonException)
                    {
                        line = null; // a torn line from a crash: what it said is re-learnt as a first contact
                    }
                    if (line is not null)
                        Take(line);
                    count++;
                }
                _readTo += start;
                held = filled.Length - start;
                filled[start..].CopyTo(buffer);
            }
        }
        finally
        {
            pool.Return(buffer);
        }
        _lines += count;
        return count;
    }

    private const int ReadChunk = 1 << 16;

    private void Take(JournalLine line)
    {
        if (line.Fingerprint is { } fingerprint && Upgrade(ref fingerprint))
        {
            line = line with { Fingerprint = fingerprint };
            _upgraded = true;
        }
        switch (line.Op)
        {
            case "intent" when line.Fingerprint is not null:
                _records[line.Path] = _records.TryGetValue(line.Path, out var r) ? r with { Pending = line.Fingerprint } : new Recorded(line.Fingerprint, line.Fingerprint, null);
                break;
            case "wrote" when line.Fingerprint is not null:
                _records[line.Path] = new Recorded(line.Fingerprint, null, line.Ino == 0 ? null : new Stat
                {
                    st_ino = (ulong)line.Ino, st_size = line.Size, st_mtime = line.Mtime, st_mtime_nsec = line.MtimeNs, st_ctime = line.Ctime, st_ctime_nsec = line.CtimeNs,
                });
                break;
            case "removed":
                _records.Remove(line.Path);
                break;
        }
    }

    private static JournalLine Line(string op, string path, string fingerprint, Stat? version) => version is { } v
        ? new JournalLine { Op = op, Path = path, Fingerprint = fingerprint, Ino = (long)v.st_ino, Size = v.st_size, Mtime = v.st_mtime, MtimeNs = v.st_mtime_nsec, Ctime = v.st_ctime, CtimeNs = v.st_ctime_nsec }
        : new JournalLine { Op = op, Path = path, Fingerprint = fingerprint };

    /// <summary>Rewrites the journal with one line per path (under the lock; others reopen it when they see the new inode).</summary>
    private void Compact()
    {
        var lines = _records.SelectMany(r => r.Value.Pending is { } pending // a rename in flight keeps its intent
            ? [Line("wrote", r.Key, r.Value.Fingerprint, r.Value.Version), new JournalLine { Op = "intent", Path = r.Key, Fingerprint = pending }]
            : new[] { Line("wrote", r.Key, r.Value.Fingerprint, r.Value.Version) });
        using (var file = HaSync.Apply.AtomicFile.Create(_path, privateUntilCommit: true))
        {
            file.Stream.Write(GuardJson.Write(lines.ToList()));
            file.Commit();
        }
        _file.Dispose();
        _file = Open(out long size);
        _readTo = _synced = size; // the compacted journal was committed durably
        _lines = _records.Count;
    }

    /// <summary>Opens the journal (creating it), noting which file it is; <paramref name="size"/> is its size.</summary>
    private FileStream Open(out long size)
    {
        var file = new FileStream(_path, new FileStreamOptions
        {
            Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite | FileShare.Delete, BufferSize = 0,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite, // its fingerprints are keyed, but they are nobody's business
        });
        if ((File.GetUnixFileMode(file.SafeFileHandle) & ~(UnixFileMode.UserRead | UnixFileMode.UserWrite)) != 0)
            File.SetUnixFileMode(file.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite); // one an older hasync made 0644
        if (Syscall.fstat((int)file.SafeFileHandle.DangerousGetHandle(), out var st) != 0)
        {
            var errno = Stdlib.GetLastError();
            file.Dispose();
            throw PosixFiles.Failure(_path, "fstat", errno);
        }
        _identity = (st.st_dev, st.st_ino);
        size = st.st_size;
        return file;
    }

    /// <summary>Another session compacted the journal (or it was removed): what it says now is read from the start.</summary>
    private void Reopen(out long size)
    {
        _file.Dispose();
        _file = Open(out size);
        _records.Clear();
        _readTo = 0;
        _lines = 0;
    }

    /// <summary>Takes the journal's lock; disposing the result releases it.</summary>
    private Held Lock()
    {
        Libc.LockExclusive(_lockFile.SafeFileHandle, _lockPath);
        return new Held(this);
    }

    private readonly struct Held(Journal journal) : IDisposable
    {
        public void Dispose() => Libc.Unlock(journal._lockFile.SafeFileHandle, journal._lockPath);
    }

    /// <summary>Puts what was recorded on disk, then closes the file.</summary>
    public void Dispose()
    {
        try
        {
            Flush(durable: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not on disk: after a crash, the intents accept what was written, and a file whose version is not known is hashed.
        }
        _file.Dispose();
        _lockFile.Dispose();
    }
}
