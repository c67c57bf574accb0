using HaSync.Delta;
using HaSync.Interop;
using Mono.Unix.Native;

namespace HaSync.Scanning;

/// <summary>
/// lstat, ownership, modes and nanosecond times through Mono.Posix (the BCL has no lchown, no utimensat on
/// symlinks, no uid/gid). Every failure is an <see cref="IOException"/> naming the path, the call and errno.
/// </summary>
public static class PosixFiles
{
    private const uint TypeMask = 0xF000, RegularFile = 0x8000, DirectoryType = 0x4000, SymlinkType = 0xA000;
    private const int HashAttempts = 3;

    private static readonly Dictionary<uint, string> UserNames = [];
    private static readonly Dictionary<uint, string> GroupNames = [];
    private static readonly Dictionary<string, (uint? Id, long Expires)> UserIds = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, (uint? Id, long Expires)> GroupIds = new(StringComparer.Ordinal);
    private const long NameLifetimeMs = 5000;
    private static readonly Lock NamesLock = new();

    /// <summary>Describes <paramref name="fullPath"/> as <paramref name="logicalPath"/>, or null when it does not exist
    /// or is neither file, directory nor symlink (devices and sockets are not configuration).</summary>
    /// <param name="fullPath">Where the path is on this node.</param>
    /// <param name="logicalPath">The path's name in the watched set.</param>
    /// <param name="withHash">Hash file content (stat, hash, stat again: a file that changes meanwhile is read again).</param>
    /// <param name="onSignature">Receives the librsync signature the hash pass yields for files worth a delta, with
    /// the lstat of the version hashed (so a cache can tell when it is stale).</param>
    /// <param name="cache">Hashes of versions already read (the daemon's); consulted and filled.</param>
    public static FileEntry? Describe(string fullPath, string logicalPath, bool withHash = true, Action<FileEntry, Stat, Signature>? onSignature = null,
        HashCache? cache = null)
    {
        long? size = null; // the last lstat's, for the read-ahead hint
        Stat? Lstat()
        {
            if (!TryLstat(fullPath, out var st))
                return null;
            size = st.st_size;
            return st;
        }
        return Describe(new EntryAccess(fullPath, Lstat, OpenRead: () => OpenForReading(fullPath, size),
                ReadLink: () => new FileInfo(fullPath).LinkTarget),
            logicalPath, withHash, onSignature, cache);
    }

    /// <summary>Opens a file of the active to read it once from start to end, unbuffered. The read-ahead hint is given only
    /// for a file large enough to gain from it (<paramref name="expectedLength"/>; null: look): for the small files that make
    /// up most of /etc, it was one syscall per file read for nothing, twice per file sent.</summary>
    /// <remarks>O_NOATIME: reading a file to hash or send it is no access anyone made, and a file just written would have
    /// its access time set and its inode dirtied (a journal write on the active for each file of a burst); only the file's
    /// owner or root may ask for it, anyone else reads without. O_NONBLOCK: a FIFO swapped in after the lstat cannot hold
    /// the reader (a regular file ignores it).</remarks>
    public static FileStream OpenForReading(string path, long? expectedLength)
    {
        bool sequential = expectedLength is not { } length || length >= SequentialHintLength;
        int fd = LibcAt.OpenAt(LibcAt.AT_FDCWD, path, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK | LibcAt.O_NOATIME);
        if (fd == -LibcAt.EPERM)
            fd = LibcAt.OpenAt(LibcAt.AT_FDCWD, path, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK);
        if (fd < 0) // the open fails again, and says why as the runtime words it (which file, what cause, which exception)
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 0, sequential ? FileOptions.SequentialScan : FileOptions.None);
        if (sequential)
            Libc.AdviseSequential(fd);
        return new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
    }

    /// <summary>A read error of <paramref name="path"/>, named as the runtime names a file it opened ("Input/output error :
    /// '/path'"): a stream opened by descriptor says only the cause.</summary>
    public static IOException Named(IOException e, string path) =>
        e.Message.Contains(path, StringComparison.Ordinal) ? e : new IOException($"{e.Message} : '{path}'", e);

    private const long SequentialHintLength = 1 << 20;

    /// <summary>Reads <paramref name="input"/> to its end through <paramref name="buffer"/>, <paramref name="chunk"/> bytes at a
    /// time, handing each read's length to <paramref name="consume"/>; returns the bytes read. A short read once
    /// <paramref name="expectedLength"/> bytes are in is a regular file's end: no read more to be told so.</summary>
    public static long ReadToEnd(Stream input, byte[] buffer, int chunk, long expectedLength, Action<int> consume)
    {
        long total = 0;
        for (int read; (read = input.Read(buffer, 0, chunk)) > 0;)
        {
            consume(read);
            if ((total += read) >= expectedLength && read < chunk)
                break;
        }
        return total;
    }

    /// <summary>How <see cref="Describe(EntryAccess, string, bool, Action{FileEntry, Stat, Signature}?, HashCache?)"/> reaches
    /// one entry: by its path (the active's scan) or through a held directory's descriptor (the agent's manifest).
    /// <paramref name="OpenRead"/> throws <see cref="FileNotFoundException"/> when the entry is gone.</summary>
    public sealed record EntryAccess(string Where, Func<Stat?> Lstat, Func<Stream> OpenRead, Func<string?> ReadLink);

    /// <summary>Describes the entry <paramref name="access"/> reaches, as <paramref name="logicalPath"/> (see the path overload).</summary>
    public static FileEntry? Describe(EntryAccess access, string logicalPath, bool withHash = true, Action<FileEntry, Stat, Signature>? onSignature = null,
        HashCache? cache = null)
    {
        for (int attempt = 1; ; attempt++)
        {
            if (access.Lstat() is not { } before)
            {
                cache?.Forget(logicalPath);
                return null;
            }
            var kind = KindOf(before);
            if (kind is null)
                return null;
            byte[]? hash = null;
            string? target = null;
            Signature? signature = null;
            if (kind == EntryKind.File && withHash && cache?.Find(logicalPath, before) is { } known)
            {
                hash = known;
            }
            else if (kind == EntryKind.File && withHash)
            {
                var started = DateTimeOffset.UtcNow;
                ContentHasher hasher;
                try
                {
                    hasher = HashFile(access, before.st_size, collectSignature: onSignature is not null && before.st_size >= SignatureFormat.DeltaMinimumFileSize);
                }
                catch (FileNotFoundException)
                {
                    return null; // removed while we looked: the next event or scan says what came instead
                }
                catch (IOException) when (attempt < HashAttempts && Replaced(access, before))
                {
                    continue; // replaced by a link or another kind of entry while we opened it: look again
                }
                hash = hasher.Finish();
                signature = hasher.Signature;
                if (hash is null || access.Lstat() is not { } after || !SameVersion(before, after))
                {
                    if (attempt < HashAttempts)
                        continue;
                    throw new FileChangedException($"{access.Where}: changed while being read, {HashAttempts} times in a row; it will be read again later");
                }
                cache?.Remember(logicalPath, before, hash, started);
            }
            else if (kind == EntryKind.Symlink)
            {
                target = access.ReadLink();
                if (target is null && attempt < HashAttempts && Replaced(access, before))
                    continue; // no longer a link: look again
                if (target is null)
                    throw new IOException($"{access.Where}: cannot read the symlink's target");
            }
            var entry = Entry(logicalPath, kind.Value, before, hash, target);
            if (signature is not null)
                onSignature?.Invoke(entry, before, signature);
            return entry;
        }
    }

    private static bool Replaced(EntryAccess access, Stat before) => access.Lstat() is not { } now || !SameVersion(before, now) || now.st_mode != before.st_mode;

    private static FileEntry Entry(string logicalPath, EntryKind kind, Stat st, byte[]? hash, string? target) => new()
    {
        Path = logicalPath,
        Kind = kind,
        Size = kind == EntryKind.File ? st.st_size : 0,
        Mode = (uint)st.st_mode & 0xFFF,
        Uid = st.st_uid,
        Gid = st.st_gid,
        Owner = UserName(st.st_uid),
        Group = GroupName(st.st_gid),
        MtimeSeconds = st.st_mtime,
        MtimeNanoseconds = (uint)st.st_mtime_nsec,
        Hash = hash,
        LinkTarget = target,
    };

    /// <summary>True when two lstat results describe the same version of a file (same inode, size, mtime and ctime to the nanosecond).</summary>
    internal static bool SameVersion(Stat a, Stat b) =>
        a.st_ino == b.st_ino && a.st_size == b.st_size && a.st_mtime == b.st_mtime && a.st_mtime_nsec == b.st_mtime_nsec
        && a.st_ctime == b.st_ctime && a.st_ctime_nsec == b.st_ctime_nsec;

    /// <summary>lstat; false when the path does not exist.</summary>
    public static bool TryLstat(string path, out Stat st)
    {
        int errno = Interop.LibcAt.Lstat(Interop.LibcAt.AT_FDCWD, path, out st);
        if (errno == 0)
            return true;
        if (errno is Interop.LibcAt.ENOENT or Interop.LibcAt.ENOTDIR)
            return false;
        throw Failure(path, "lstat", NativeConvert.ToErrno(errno));
    }

    internal static EntryKind? KindOf(Stat st) => ((uint)st.st_mode & TypeMask) switch
    {
        RegularFile => EntryKind.File,
        DirectoryType => EntryKind.Directory,
        SymlinkType => EntryKind.Symlink,
        _ => null,
    };

    /// <summary>Reads a file through a <see cref="ContentHasher"/> (which also builds its signature when asked).</summary>
    private static ContentHasher HashFile(EntryAccess access, long length, bool collectSignature)
    {
        using var stream = access.OpenRead();
        try
        {
            return Hash(stream, length, collectSignature);
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw Named(e, access.Where);
        }
    }

    /// <summary>Reads <paramref name="stream"/> from its start through a <see cref="ContentHasher"/> for content of
    /// <paramref name="length"/> bytes, a large file in two halves on two cores; the stream stays open.</summary>
    public static ContentHasher Hash(Stream stream, long length, bool collectSignature)
    {
        var hasher = new ContentHasher(length, collectSignature);
        if (length >= ParallelHashLength && Environment.ProcessorCount > 1 && stream is FileStream { CanSeek: true } file)
        {
            // A large file's second half is hashed on another core meanwhile (its blocks' digests join the first half's in
            // order): the passive answers a manifest, and the active describes a large edit, in about half the time.
            long half = hasher.BlockBoundaryNear(length / 2);
            var rest = hasher.Part(half, length - half);
            // Its own thread, not the pool's: while a session starts, pool threads wait on ssh, and the half would wait
            // with them (seen: a 100 MB file's second half hashed 350 ms after the first, once the agent had answered).
            var second = Task.Factory.StartNew(() => HashRange(file.SafeFileHandle, half, length - half, rest), TaskCreationOptions.LongRunning);
            try
            {
                HashRange(file.SafeFileHandle, 0, half, hasher);
            }
            finally
            {
                ((IAsyncResult)second).AsyncWaitHandle.WaitOne(); // the other half is read before the file closes
            }
            second.GetAwaiter().GetResult();
            hasher.Join(rest);
            Span<byte> beyond = stackalloc byte[1]; // grown since its lstat: hashed too long, and so no hash (it is read again)
            if (RandomAccess.Read(file.SafeFileHandle, beyond, length) > 0)
                hasher.Update(beyond);
            return hasher;
        }
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            ReadToEnd(stream, buffer, 1 << 16, length, read => hasher.Update(buffer.AsSpan(0, read))); // a file grown is hashed too long
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return hasher;
    }

    /// <summary>Files from this size on are hashed in two halves at once.</summary>
    private const long ParallelHashLength = 8 << 20;

    /// <summary>Reads <paramref name="length"/> bytes from <paramref name="offset"/> through <paramref name="hasher"/>
    /// (fewer if the file is shorter now: the hash then comes out null).</summary>
    private static void HashRange(Microsoft.Win32.SafeHandles.SafeFileHandle file, long offset, long length, ContentHasher hasher)
    {
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            for (long done = 0; done < length;)
            {
                int read = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(1 << 16, length - done)), offset + done);
                if (read == 0)
                    break;
                hasher.Update(buffer.AsSpan(0, read));
                done += read;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Owner, mode and time of <paramref name="path"/> as <paramref name="entry"/> says. Owner first:
    /// chown clears setuid/setgid. Names are resolved on this node; the numeric id is the fallback.</summary>
    public static void ApplyMetadata(string path, FileEntry entry)
    {
        var (uid, gid) = OwnerOnThisNode(entry);
        if (Syscall.lchown(path, uid, gid) != 0)
            throw Failure(path, $"lchown to {uid}:{gid}", Stdlib.GetLastError());
        if (entry.Kind != EntryKind.Symlink && Syscall.chmod(path, (FilePermissions)entry.Mode) != 0)
            throw Failure(path, $"chmod to {entry.ModeOctal}", Stdlib.GetLastError());
        if (entry.Kind != EntryKind.Directory)
            SetMtime(path, entry.MtimeSeconds, entry.MtimeNanoseconds);
    }

    /// <summary>Owner, mode and time as <paramref name="entry"/> says, on an open descriptor of the file or directory itself
    /// (fchown, fchmod, futimens): what is changed is what was opened, whatever a path names meanwhile.
    /// <paramref name="where"/> names it in errors. <paramref name="owner"/> is the owner the file already has, when known
    /// (from an fstat of this descriptor): no fchown when it is the wanted one (most of /etc is root's, as is the agent).
    /// <paramref name="mode"/> is its permission bits from the same fstat: no fchmod when they are the wanted ones and no
    /// fchown was made (a chown clears the set-id bits).</summary>
    public static void ApplyMetadata(Microsoft.Win32.SafeHandles.SafeFileHandle file, string where, FileEntry entry, (uint Uid, uint Gid)? owner = null, uint? mode = null)
    {
        var (uid, gid) = OwnerOnThisNode(entry);
        int fd = (int)file.DangerousGetHandle();
        bool chowned = owner != (uid, gid);
        if (chowned && Interop.LibcAt.Fchown(fd, uid, gid) is var errno and not 0)
            throw new IOException($"{where}: chown to {uid}:{gid} failed: {Interop.LibcAt.Describe(errno)}");
        if ((chowned || mode != entry.Mode) && Interop.LibcAt.Fchmod(fd, entry.Mode) is var e2 and not 0)
            throw new IOException($"{where}: chmod to {entry.ModeOctal} failed: {Interop.LibcAt.Describe(e2)}");
        if (Interop.LibcAt.Futimens(fd, new Interop.LibcAt.Timespec { Seconds = entry.MtimeSeconds, Nanoseconds = entry.MtimeNanoseconds }) is var e3 and not 0)
            throw new IOException($"{where}: utimensat failed: {Interop.LibcAt.Describe(e3)}");
    }

    /// <summary>Sets atime and mtime to the given time, on the link itself for a symlink.</summary>
    public static void SetMtime(string path, long seconds, uint nanoseconds)
    {
        var time = new Timespec { tv_sec = seconds, tv_nsec = nanoseconds };
        if (Syscall.utimensat(Syscall.AT_FDCWD, path, [time, time], AtFlags.AT_SYMLINK_NOFOLLOW) != 0)
            throw Failure(path, "utimensat", Stdlib.GetLastError());
    }

    /// <summary>The uid and gid <paramref name="entry"/> is to have on this node: its owner's and group's names resolved
    /// here, its numeric ids the fallback.</summary>
    public static (uint Uid, uint Gid) OwnerOnThisNode(FileEntry entry) => (ResolveUser(entry.Owner, entry.Uid), ResolveGroup(entry.Group, entry.Gid));

    /// <summary>The uid for a user name on this node, or <paramref name="fallback"/>.</summary>
    public static uint ResolveUser(string name, uint fallback) =>
        name.Length > 0 && Cached(UserIds, name, n => Syscall.getpwnam(n)?.pw_uid) is uint id ? id : fallback;

    /// <summary>The gid for a group name on this node, or <paramref name="fallback"/>.</summary>
    public static uint ResolveGroup(string name, uint fallback) =>
        name.Length > 0 && Cached(GroupIds, name, n => Syscall.getgrnam(n)?.gr_gid) is uint id ? id : fallback;

    // Each NSS lookup reads /etc/passwd or /etc/group (after trying nscd's socket): a burst of thousands of files
    // would do that thousands of times. A few seconds of memory still sees a user an admin adds meanwhile.
    private static uint? Cached(Dictionary<string, (uint? Id, long Expires)> cache, string name, Func<string, uint?> lookup)
    {
        long now = Environment.TickCount64;
        lock (NamesLock)
            if (cache.TryGetValue(name, out var known) && known.Expires > now)
                return known.Id;
        uint? id = lookup(name);
        lock (NamesLock)
            cache[name] = (id, now + NameLifetimeMs);
        return id;
    }

    private static string UserName(uint uid)
    {
        lock (NamesLock)
        {
            if (!UserNames.TryGetValue(uid, out string? name))
                UserNames[uid] = name = Syscall.getpwuid(uid)?.pw_name ?? "";
            return name;
        }
    }

    private static string GroupName(uint gid)
    {
        lock (NamesLock)
        {
            if (!GroupNames.TryGetValue(gid, out string? name))
                GroupNames[gid] = name = Syscall.getgrgid(gid)?.gr_name ?? "";
            return name;
        }
    }

    /// <summary>The names in the directory <paramref name="path"/> ("." and ".." left out), in the order readdir gives them.
    /// Nothing is looked up per name (.NET's enumeration stats the target of each symlink: most of /etc's entries).</summary>
    /// <exception cref="DirectoryNotFoundException">Gone, or no longer a directory.</exception>
    /// <exception cref="IOException">Cannot be read (HResult: the errno).</exception>
    public static List<string> NamesIn(string path)
    {
        var dir = Syscall.opendir(path);
        if (dir == IntPtr.Zero)
        {
            var errno = Stdlib.GetLastError();
            throw errno is Errno.ENOENT or Errno.ENOTDIR ? new DirectoryNotFoundException($"{path}: gone") : Failure(path, "opendir", errno);
        }
        return ReadNames(dir, path);
    }

    /// <summary>The names a directory stream gives ("." and ".." left out); closes it.</summary>
    internal static List<string> ReadNames(IntPtr dir, string path)
    {
        try
        {
            var names = new List<string>();
            while (Syscall.readdir(dir) is { } entry)
                if (entry.d_name is not ("." or ".."))
                    names.Add(entry.d_name);
            if (Stdlib.GetLastError() is var errno and not 0)
                throw Failure(path, "readdir", errno); // a partial list would look like deletes
            return names;
        }
        finally
        {
            _ = Syscall.closedir(dir); // a read-only stream: nothing is lost if closing fails
        }
    }

    /// <summary>A failed call's error, naming the path and the cause; its HResult is the errno, as .NET's own I/O errors carry it.</summary>
    internal static IOException Failure(string path, string call, Errno errno) =>
        new($"{path}: {call} failed: {Stdlib.strerror(errno)}", NativeConvert.FromErrno(errno));

    /// <summary>True when <paramref name="e"/> failed for lack of room: no space or no inode left (ENOSPC), or a quota (EDQUOT).</summary>
    public static bool IsNoSpace(Exception e) => e is IOException { HResult: 28 or 122 };
}

/// <summary>A file that kept changing while it was being hashed; it is read again later, never shipped half-written.</summary>
public sealed class FileChangedException(string message) : IOException(message);
