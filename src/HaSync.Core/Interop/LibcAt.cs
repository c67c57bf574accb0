using System.Runtime.InteropServices;

namespace HaSync.Interop;

/// <summary>The *at(2) calls the agent makes below a held directory descriptor, and openat2(2). Raw errno-returning
/// bindings: the caller words the error (which file, which call).</summary>
internal static partial class LibcAt
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_NONBLOCK = 0x800, O_NOATIME = 0x40000,
        O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000, O_TMPFILE = 0x400000 | O_DIRECTORY;
    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_SYMLINK_FOLLOW = 0x400, AT_EMPTY_PATH = 0x1000;
    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08;
    public const int ENOENT = 2, EINTR = 4, EAGAIN = 11, EEXIST = 17, ENOTDIR = 20, EINVAL = 22, ELOOP = 40, ENOSYS = 38, EXDEV = 18,
        ENOTEMPTY = 39, EPERM = 1, EISDIR = 21, EOPNOTSUPP = 95;
    private const long SYS_openat2 = 437; // x86-64 and arm64 alike (the unified syscall table)

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private const long SYS_newfstatat = 262; // x86-64 (the only architecture this build targets)

    /// <summary>x86-64 Linux's struct stat, as newfstatat(2) fills it.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct KernelStat
    {
        public ulong Dev, Ino, Nlink;
        public uint Mode, Uid, Gid;
        private readonly uint _pad;
        public ulong Rdev;
        public long Size, BlockSize, Blocks;
        public long Atime, AtimeNsec, Mtime, MtimeNsec, Ctime, CtimeNsec;
        private readonly long _reserved0, _reserved1, _reserved2;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_newfstatat(long number, int dirfd, string path, out KernelStat st, int flags);

    /// <summary>lstat of <paramref name="path"/> (relative to <paramref name="dirfd"/>, or to the working directory with
    /// <see cref="AT_FDCWD"/>): 0, or the errno. Made here rather than through Mono.Posix, whose marshalling of the name
    /// cost more than the call itself, once or twice for every entry scanned or written.</summary>
    public static int Lstat(int dirfd, string path, out Mono.Unix.Native.Stat st)
    {
        while (true)
        {
            long result = syscall_newfstatat(SYS_newfstatat, dirfd, path, out var k, AT_SYMLINK_NOFOLLOW);
            int errno = Errno(result);
            if (errno == EINTR)
                continue;
            st = errno != 0 ? default : new Mono.Unix.Native.Stat
            {
                st_dev = k.Dev, st_ino = k.Ino, st_nlink = k.Nlink, st_mode = (Mono.Unix.Native.FilePermissions)k.Mode,
                st_uid = k.Uid, st_gid = k.Gid, st_rdev = k.Rdev, st_size = k.Size, st_blksize = k.BlockSize, st_blocks = k.Blocks,
                st_atime = k.Atime, st_atime_nsec = k.AtimeNsec, st_mtime = k.Mtime, st_mtime_nsec = k.MtimeNsec,
                st_ctime = k.Ctime, st_ctime_nsec = k.CtimeNsec,
            };
            return errno;
        }
    }

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat_(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial long syscall_openat2(long number, int dirfd, string path, ref OpenHow how, nuint size);

    [LibraryImport("libc", EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdirat_(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlinkat_(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat_(int olddirfd, string oldpath, int newdirfd, string newpath);

    [LibraryImport("libc", EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int linkat_(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);

    [LibraryImport("libc", EntryPoint = "symlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int symlinkat_(string target, int dirfd, string path);

    [LibraryImport("libc", EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fchownat_(int dirfd, string path, uint uid, uint gid, int flags);

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int utimensat_(int dirfd, string path, [In] Timespec[] times, int flags);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static partial int fchown_(int fd, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int fchmod_(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    private static partial int futimens_(int fd, [In] Timespec[] times);

    [LibraryImport("libc", EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint readlinkat_(int dirfd, string path, Span<byte> buffer, nuint size);

    /// <summary>readlinkat(2): the link's target, or null with <paramref name="errno"/>.</summary>
    public static string? ReadLinkAt(int dirfd, string name, out int errno)
    {
        Span<byte> buffer = stackalloc byte[4097];
        nint length = readlinkat_(dirfd, name, buffer, (nuint)buffer.Length);
        errno = length < 0 ? Marshal.GetLastPInvokeError() : 0;
        return length < 0 ? null : System.Text.Encoding.UTF8.GetString(buffer[..(int)length]);
    }

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath_(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void free_(nint pointer);

    /// <summary>realpath(3): <paramref name="path"/> with every link resolved, or null when it does not exist.</summary>
    public static string? RealPath(string path)
    {
        nint resolved = realpath_(path, 0);
        if (resolved == 0)
            return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free_(resolved);
        }
    }

    private static int Errno(long result) => result < 0 ? Marshal.GetLastPInvokeError() : 0;

    /// <summary>openat(2), retried on EINTR: the descriptor, or -errno.</summary>
    public static int OpenAt(int dirfd, string path, int flags, uint mode = 0)
    {
        while (true)
        {
            int fd = openat_(dirfd, path, flags | O_CLOEXEC, mode);
            int errno = Errno(fd);
            if (errno != EINTR)
                return fd >= 0 ? fd : -errno;
        }
    }

    /// <summary>openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: the descriptor, or -errno
    /// (-ENOSYS where the kernel predates it, 5.6).</summary>
    public static int OpenBeneath(int dirfd, string path, int flags)
    {
        var how = new OpenHow { Flags = (ulong)(flags | O_CLOEXEC), Resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        while (true)
        {
            long fd = syscall_openat2(SYS_openat2, dirfd, path, ref how, (nuint)Marshal.SizeOf<OpenHow>());
            int errno = Errno(fd);
            if (errno != EINTR && errno != EAGAIN) // EAGAIN: a rename raced the lookup (RESOLVE_BENEATH is strict about it)
                return fd >= 0 ? (int)fd : -errno;
        }
    }

    public static int MkdirAt(int dirfd, string name, uint mode) => Errno(mkdirat_(dirfd, name, mode));
    public static int UnlinkAt(int dirfd, string name, int flags) => Errno(unlinkat_(dirfd, name, flags));
    public static int RenameAt(int dirfd, string from, string to) => Errno(renameat_(dirfd, from, dirfd, to));
    public static int SymlinkAt(string target, int dirfd, string name) => Errno(symlinkat_(target, dirfd, name));

    /// <summary>linkat(2) of the open file <paramref name="fd"/> (an O_TMPFILE one) as <paramref name="name"/> in
    /// <paramref name="dirfd"/>; never replaces an entry (EEXIST). AT_EMPTY_PATH wants CAP_DAC_READ_SEARCH (ENOENT without
    /// it); an agent that lacks it links through /proc's name for the descriptor instead.</summary>
    public static int LinkAt(int fd, int dirfd, string name)
    {
        int errno = Errno(linkat_(fd, "", dirfd, name, AT_EMPTY_PATH));
        return errno == ENOENT ? Errno(linkat_(AT_FDCWD, $"/proc/self/fd/{fd}", dirfd, name, AT_SYMLINK_FOLLOW)) : errno;
    }
    public static int ChownLinkAt(int dirfd, string name, uint uid, uint gid) => Errno(fchownat_(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW));
    public static int SetLinkTimesAt(int dirfd, string name, Timespec time) => Errno(utimensat_(dirfd, name, [time, time], AT_SYMLINK_NOFOLLOW));
    public static int Fchown(int fd, uint uid, uint gid) => Errno(fchown_(fd, uid, gid));
    public static int Fchmod(int fd, uint mode) => Errno(fchmod_(fd, mode));
    public static int Futimens(int fd, Timespec time) => Errno(futimens_(fd, [time, time]));

    /// <summary>The errno's text, as strerror gives it.</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
