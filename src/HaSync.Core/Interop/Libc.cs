using System.Runtime.InteropServices;

namespace HaSync.Interop;

/// <summary>The few libc calls the BCL does not offer (Mono.Posix covers stat, ownership and times).</summary>
internal static partial class Libc
{
    public const int O_RDONLY = 0x0000;
    public const int O_DIRECTORY = 0x10000;
    public const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    /// <summary>Raises this process's soft limit on open descriptors to its hard limit (as systemd advises programs that
    /// need many to do; the .NET native runtime leaves it, often at 1024) and returns the soft limit now in force.</summary>
    public static long RaiseOpenFileLimit()
    {
        const int RLIMIT_NOFILE = 7;
        if (getrlimit(RLIMIT_NOFILE, out var limit) != 0)
            return 1024;
        if (limit.Current < limit.Maximum && setrlimit(RLIMIT_NOFILE, new RLimit { Current = limit.Maximum, Maximum = limit.Maximum }) == 0)
            limit.Current = limit.Maximum;
        return (long)Math.Min(limit.Current, int.MaxValue);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int syncfs(int fd);

    /// <summary>syncfs(2) on the file system of an open descriptor (on <paramref name="path"/>): one flush for a whole batch.</summary>
    public static void SyncFileSystem(int fd, string path)
    {
        if (syncfs(fd) != 0)
            throw LastError(path, "syncfs");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint getrandom(Span<byte> buffer, nuint length, uint flags);

    /// <summary><paramref name="count"/> bytes from the kernel's random generator (getrandom(2)): what .NET's
    /// RandomNumberGenerator would give, without loading OpenSSL into a daemon that needs it for nothing else (3.4 MB
    /// resident).</summary>
    public static byte[] RandomBytes(int count)
    {
        const int EINTR = 4;
        byte[] bytes = new byte[count];
        for (int done = 0; done < count;)
        {
            nint got = getrandom(bytes.AsSpan(done), (nuint)(count - done), 0);
            if (got > 0)
                done += (int)got;
            else if (Marshal.GetLastPInvokeError() != EINTR)
                throw LastError("the kernel's random generator", "getrandom");
        }
        return bytes;
    }

    /// <summary>The failure of the call just made on <paramref name="path"/>, its HResult the errno (ENOSPC reads as a full disk).</summary>
    private static IOException LastError(string path, string call)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{path}: {call} failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    /// <summary>A second descriptor on what <paramref name="fd"/> is open on (F_DUPFD_CLOEXEC); -1 on failure.</summary>
    public static int Duplicate(int fd) => fcntl(fd, 1030 /* F_DUPFD_CLOEXEC */, 0);

    /// <summary>Makes room in this process's table of descriptors for <paramref name="descriptors"/> open at once (a
    /// descriptor duplicated at that number and closed); a failure only leaves the table to grow as it fills.</summary>
    public static void GrowDescriptorTable(int descriptors)
    {
        int fd = fcntl(2, 1030 /* F_DUPFD_CLOEXEC */, descriptors - 1);
        if (fd >= 0)
            close(fd);
    }

    /// <summary>Asks for a pipe of <paramref name="bytes"/> (F_SETPIPE_SZ; the kernel caps it at fs.pipe-max-size unless the
    /// caller may exceed it); the size granted, or -1 when <paramref name="fd"/> is not a pipe or the call failed.</summary>
    public static int TryResizePipe(int fd, int bytes) => fcntl(fd, 1031 /* F_SETPIPE_SZ */, bytes);

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int sync_file_range(int fd, long offset, long count, uint flags);

    /// <summary>Starts writing <paramref name="fd"/>'s dirty pages back without waiting (sync_file_range(SYNC_FILE_RANGE_WRITE)):
    /// by the time the batch is made durable, most of its data is on its way. A hint: its failure is left to the fsync.
    /// <paramref name="count"/> 0: from <paramref name="offset"/> to the end.</summary>
    public static void StartWriteback(int fd, long offset = 0, long count = 0) => _ = sync_file_range(fd, offset, count, 2 /* SYNC_FILE_RANGE_WRITE */);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int posix_fadvise(int fd, long offset, long length, int advice);

    /// <summary>Tells the kernel that <paramref name="fd"/> will be read from start to end (POSIX_FADV_SEQUENTIAL: a larger
    /// read-ahead). A hint: its failure changes nothing.</summary>
    public static void AdviseSequential(int fd) => _ = posix_fadvise(fd, 0, 0, 2 /* POSIX_FADV_SEQUENTIAL */);

    /// <summary>Drops <paramref name="fd"/>'s cached pages in the range (POSIX_FADV_DONTNEED: clean ones are freed, dirty
    /// ones stay). A hint: its failure changes nothing.</summary>
    public static void DropCached(int fd, long offset, long count) => _ = posix_fadvise(fd, offset, count, 4 /* POSIX_FADV_DONTNEED */);

    /// <summary>fsync(2) of one descriptor on <paramref name="path"/> (content, owner, mode and times): only its own data is
    /// waited for, never another writer's on the same file system (syncfs would).</summary>
    public static void Sync(int fd, string path)
    {
        if (fsync(fd) != 0)
            throw LastError(path, "fsync");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pwrite(int fd, byte* buffer, nuint count, long offset);

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="offset"/> of <paramref name="fd"/> (pwrite(2), EINTR and
    /// short writes retried). The exception's HResult is the errno (ENOSPC reads as a full disk).</summary>
    public static unsafe void WriteAt(int fd, ReadOnlySpan<byte> data, long offset, string path)
    {
        const int EINTR = 4;
        fixed (byte* start = data)
        {
            for (int done = 0; done < data.Length;)
            {
                nint written = pwrite(fd, start + done, (nuint)(data.Length - done), offset + done);
                if (written < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EINTR)
                        continue;
                    throw LastError(path, "write");
                }
                done += (int)written;
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    /// <summary>flock(LOCK_EX | LOCK_NB): true when taken, false when another process holds it.</summary>
    public static bool TryLockExclusive(Microsoft.Win32.SafeHandles.SafeFileHandle file, string path)
    {
        const int LOCK_EX = 2, LOCK_NB = 4, EWOULDBLOCK = 11;
        if (flock((int)file.DangerousGetHandle(), LOCK_EX | LOCK_NB) == 0)
            return true;
        return Marshal.GetLastPInvokeError() == EWOULDBLOCK ? false : throw new IOException($"{path}: flock failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>flock(LOCK_EX), waiting for the holder; released by <see cref="Unlock"/> or when the handle is closed.</summary>
    public static void LockExclusive(Microsoft.Win32.SafeHandles.SafeFileHandle file, string path)
    {
        const int LOCK_EX = 2, EINTR = 4;
        while (flock((int)file.DangerousGetHandle(), LOCK_EX) != 0)
            if (Marshal.GetLastPInvokeError() != EINTR)
                throw new IOException($"{path}: flock failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    /// <summary>flock(LOCK_UN): releases a lock taken with <see cref="LockExclusive"/>, the handle staying open.</summary>
    public static void Unlock(Microsoft.Win32.SafeHandles.SafeFileHandle file, string path)
    {
        const int LOCK_UN = 8;
        if (flock((int)file.DangerousGetHandle(), LOCK_UN) != 0)
            throw new IOException($"{path}: flock failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rename_(string from, string to);

    /// <summary>rename(2): replaces <paramref name="to"/> atomically and never follows a symlink (File.Move does,
    /// and refuses a link that points to a directory).</summary>
    public static void Rename(string from, string to)
    {
        if (rename_(from, to) != 0)
            throw new IOException($"{to}: rename from {Path.GetFileName(from)} failed: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int fromDirectory, string from, int toDirectory, string to, uint flags);

    /// <summary>renameat2(2) with RENAME_EXCHANGE: swaps the two names atomically. False when <paramref name="to"/> does not
    /// exist or the file system cannot exchange (nothing changed then).</summary>
    public static bool Exchange(string from, string to)
    {
        const int AT_FDCWD = -100;
        const uint RENAME_EXCHANGE = 2;
        return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0;
    }

    /// <summary>fsync of a directory: makes a rename inside it durable.</summary>
    public static void FsyncDirectory(string directory) => OnDirectory(directory, "fsync of directory", fsync);

    /// <summary>Opens <paramref name="directory"/>, runs a call on its descriptor, closes it; errors name the directory and errno.</summary>
    private static void OnDirectory(string directory, string what, Func<int, int> call)
    {
        int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"{directory}: cannot open directory for {what}: {Marshal.GetLastPInvokeErrorMessage()}");
        try
        {
            if (call(fd) != 0)
                throw new IOException($"{directory}: {what} failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        finally
        {
            close(fd);
        }
    }
}
