using System.Collections.Concurrent;
using Mono.Unix.Native;

namespace HaSync.Scanning;

/// <summary>
/// Content hashes of the active's files, keyed by path and exact version (inode, size, mtime and ctime to the
/// nanosecond), so a daemon's rescans hash only what changed. Racy entries are not trusted, as in git's index:
/// a file whose ctime is within <see cref="RacyWindow"/> of the moment its hashing began may be rewritten with
/// the same size inside one timestamp tick, so it is hashed again next time. Thread-safe (targets share one).
/// </summary>
public sealed class HashCache
{
    /// <summary>Timestamps are coarse (a jiffy, or a second on some file systems); a second covers them all.</summary>
    public static readonly TimeSpan RacyWindow = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Cached> _entries = new(StringComparer.Ordinal);

    private sealed record Cached(Stat Version, byte[] Hash, long HashStartedNs);

    /// <summary>Entries held.</summary>
    public int Count => _entries.Count;

    /// <summary>The hash of this exact version, if known and not racy.</summary>
    public byte[]? Find(string logicalPath, Stat version) =>
        _entries.TryGetValue(logicalPath, out var cached) && PosixFiles.SameVersion(cached.Version, version)
        && ChangeTimeNs(version) + RacyWindow.Ticks * 100 <= cached.HashStartedNs
            ? cached.Hash
            : null;

    /// <summary>Remembers a hash; <paramref name="hashStarted"/> is when reading began.</summary>
    public void Remember(string logicalPath, Stat version, byte[] hash, DateTimeOffset hashStarted) =>
        _entries[logicalPath] = new Cached(version, hash, (hashStarted - DateTimeOffset.UnixEpoch).Ticks * 100);

    /// <summary>Forgets a path that is gone.</summary>
    public void Forget(string logicalPath) => _entries.TryRemove(logicalPath, out _);

    private static long ChangeTimeNs(Stat st) => st.st_ctime * 1_000_000_000 + st.st_ctime_nsec;
}
