using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using HaSync.Delta;
using Mono.Unix.Native;

namespace HaSync.Scanning;

/// <summary>
/// Content hashes of the active's files, keyed by path and exact version (inode, size, mtime and ctime to the
/// nanosecond), so a daemon's rescans hash only what changed. Racy entries are not trusted, as in git's index:
/// a file whose ctime is within <see cref="RacyWindow"/> of the moment its hashing began may be rewritten with
/// the same size inside one timestamp tick, so it is hashed again next time. Thread-safe (targets share one).
/// The agent keeps one in its state directory across sessions (<see cref="Load"/>, <see cref="Save"/>): a manifest of
/// a passive in sync then reads no file, only lstats them, as rsync's quick check does, but still notices a change of
/// the same size and mtime (its ctime moved; no one but the kernel sets a ctime).
/// </summary>
public sealed class HashCache
{
    /// <summary>Timestamps are coarse (a jiffy, or a second on some file systems); a second covers them all.</summary>
    public static readonly TimeSpan RacyWindow = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Cached> _entries = new(StringComparer.Ordinal);

    private sealed record Cached(Stat Version, byte[] Hash, long HashStartedNs);

    /// <summary>Entries held.</summary>
    public int Count => _entries.Count;

    /// <summary>Something was remembered or forgotten since the cache was made, loaded or saved.</summary>
    public bool Changed => _changed;
    private volatile bool _changed;

    /// <summary>The hash of this exact version, if known and not racy.</summary>
    public byte[]? Find(string logicalPath, Stat version) =>
        _entries.TryGetValue(logicalPath, out var cached) && PosixFiles.SameVersion(cached.Version, version)
        && ChangeTimeNs(version) + RacyWindow.Ticks * 100 <= cached.HashStartedNs
            ? cached.Hash
            : null;

    /// <summary>Remembers a hash; <paramref name="hashStarted"/> is when reading began.</summary>
    public void Remember(string logicalPath, Stat version, byte[] hash, DateTimeOffset hashStarted)
    {
        _entries[logicalPath] = new Cached(version, hash, (hashStarted - DateTimeOffset.UnixEpoch).Ticks * 100);
        _changed = true;
    }

    /// <summary>Forgets a path that is gone.</summary>
    public void Forget(string logicalPath)
    {
        if (_entries.TryRemove(logicalPath, out _))
            _changed = true;
    }

    /// <summary>Forgets every path <paramref name="gone"/> says is no longer there (a walk that did not meet it).</summary>
    public void ForgetWhere(Func<string, bool> gone)
    {
        foreach (string path in _entries.Keys)
            if (gone(path))
                Forget(path);
    }

    // The file: magic, count, then per entry the path (u16 length, UTF-8), the version (inode, size, mtime and ctime in
    // seconds and nanoseconds), when its hashing began (ns) and the hash; then a BLAKE2b-256 of all that, so a torn or
    // damaged file is refused whole rather than trusted in part.
    private static ReadOnlySpan<byte> Magic => "HSYNHC1\n"u8;
    private const int HashLength = Blake2b.HashLength;
    private const int FixedPart = 2 + 7 * 8 + HashLength; // length, version and start, hash

    /// <summary>The cache saved at <paramref name="path"/>; an empty one when there is none. A file that is not a whole
    /// cache (torn by a crash, damaged, another version's) is reported through <paramref name="unreadable"/> and left out.</summary>
    public static HashCache Load(string path, Action<string>? unreadable = null)
    {
        var cache = new HashCache();
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return cache; // none yet: a first run, or a state directory still to be made
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            unreadable?.Invoke($"{path}: {e.Message}");
            return cache;
        }
        if (!TryRead(data, cache))
        {
            unreadable?.Invoke($"{path}: not a whole hash cache; every file is hashed again");
            cache._entries.Clear();
        }
        cache._changed = false;
        return cache;
    }

    private static bool TryRead(ReadOnlySpan<byte> data, HashCache cache)
    {
        if (data.Length < Magic.Length + 4 + HashLength || !data.StartsWith(Magic))
            return false;
        var body = data[..^HashLength];
        Span<byte> digest = stackalloc byte[HashLength];
        Blake2b.Hash(body, digest);
        if (!digest.SequenceEqual(data[^HashLength..]))
            return false;
        Span<long> fields = stackalloc long[7];
        int at = Magic.Length;
        uint count = BinaryPrimitives.ReadUInt32BigEndian(body[at..]);
        at += 4;
        for (uint i = 0; i < count; i++)
        {
            if (body.Length - at < FixedPart)
                return false;
            int pathLength = BinaryPrimitives.ReadUInt16BigEndian(body[at..]);
            at += 2;
            if (body.Length - at < pathLength + FixedPart - 2)
                return false;
            string logicalPath = Encoding.UTF8.GetString(body.Slice(at, pathLength));
            at += pathLength;
            for (int f = 0; f < fields.Length; f++, at += 8)
                fields[f] = BinaryPrimitives.ReadInt64BigEndian(body[at..]);
            var version = new Stat { st_ino = (ulong)fields[0], st_size = fields[1], st_mtime = fields[2], st_mtime_nsec = fields[3], st_ctime = fields[4], st_ctime_nsec = fields[5] };
            cache._entries[logicalPath] = new Cached(version, body.Slice(at, HashLength).ToArray(), fields[6]);
            at += HashLength;
        }
        return at == body.Length;
    }

    /// <summary>Where the active's scans (the daemon's, resync's) keep their cache in its state directory.</summary>
    public static string ActiveFile(string stateDirectory) => Path.Combine(stateDirectory, "active-hashes.bin");

    /// <summary>Where the agent keeps the passive's cache in its state directory (apart from the active's: the two may
    /// share one directory, with other roots).</summary>
    public static string AgentFile(string stateDirectory) => Path.Combine(stateDirectory, "hashes.bin");

    /// <summary><see cref="Save"/> if anything <see cref="Changed"/>; a failure goes to <paramref name="problem"/> (it only
    /// costs hashing again).</summary>
    public void SaveIfChanged(string path, Action<string> problem)
    {
        if (!Changed)
            return;
        try
        {
            Save(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem($"{path}: cannot save the hash cache ({e.Message}); the next scan hashes every file again");
        }
    }

    /// <summary>Writes the cache to <paramref name="path"/> (a temp file renamed over it, 0600: it says which files exist).
    /// Not synced: a cache lost in a crash only costs hashing again.</summary>
    public void Save(string path)
    {
        _changed = false;
        var entries = _entries.Where(e => Encoding.UTF8.GetByteCount(e.Key) <= ushort.MaxValue).ToArray(); // a longer path is hashed each time
        var data = new MemoryStream(entries.Length * 100 + 64);
        Span<byte> number = stackalloc byte[8];
        data.Write(Magic);
        BinaryPrimitives.WriteUInt32BigEndian(number, (uint)entries.Length);
        data.Write(number[..4]);
        foreach (var (logicalPath, cached) in entries)
        {
            byte[] name = Encoding.UTF8.GetBytes(logicalPath);
            BinaryPrimitives.WriteUInt16BigEndian(number, (ushort)name.Length);
            data.Write(number[..2]);
            data.Write(name);
            var v = cached.Version;
            foreach (long value in (ReadOnlySpan<long>)[(long)v.st_ino, v.st_size, v.st_mtime, v.st_mtime_nsec, v.st_ctime, v.st_ctime_nsec, cached.HashStartedNs])
            {
                BinaryPrimitives.WriteInt64BigEndian(number, value);
                data.Write(number);
            }
            data.Write(cached.Hash);
        }
        Span<byte> digest = stackalloc byte[HashLength];
        Blake2b.Hash(data.GetBuffer().AsSpan(0, (int)data.Length), digest);
        data.Write(digest);
        using var file = HaSync.Apply.AtomicFile.Create(path, privateUntilCommit: true);
        file.Stream.Write(data.GetBuffer().AsSpan(0, (int)data.Length));
        file.Commit(durable: false);
    }

    private static long ChangeTimeNs(Stat st) => st.st_ctime * 1_000_000_000 + st.st_ctime_nsec;
}
