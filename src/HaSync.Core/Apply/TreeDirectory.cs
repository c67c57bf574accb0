using HaSync.Interop;
using HaSync.Scanning;
using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;

namespace HaSync.Apply;

/// <summary>
/// A directory of the passive tree, held open by descriptor, and the calls the agent makes in it: every one relative
/// to the descriptor (openat, mkdirat, unlinkat, renameat, linkat, symlinkat, fchownat and utimensat without following the
/// last link), never a path spelled out again. A directory swapped for a symlink after it was opened changes nothing:
/// the descriptor still names the directory that was checked. <see cref="FullPath"/> is for messages only.
/// </summary>
public sealed class TreeDirectory : IDisposable
{
    /// <summary>The descriptor and what fstat said of it, shared by every <see cref="TreeDirectory"/> handed out for one
    /// opening (<see cref="Share"/>): closed when the last of them is disposed. The agent uses them from one thread.</summary>
    private sealed class Opened(int fd)
    {
        public int Fd { get; } = fd;
        public int Holders { get; set; } = 1;
        public (ulong Device, ulong Inode)? Identity { get; set; }
    }

    private Opened? _opened;

    internal TreeDirectory(int fd, string fullPath)
    {
        _opened = new Opened(fd);
        FullPath = fullPath;
    }

    private TreeDirectory(Opened opened, string fullPath)
    {
        opened.Holders++;
        _opened = opened;
        FullPath = fullPath;
    }

    /// <summary>Another holder of the same descriptor, disposed on its own: the descriptor stays open until the last one is.</summary>
    internal TreeDirectory Share() => new(_opened ?? throw new ObjectDisposedException(FullPath), FullPath);

    /// <summary>Where the directory stood when it was opened (for messages; never opened by this name).</summary>
    public string FullPath { get; }

    internal int Descriptor => _opened?.Fd ?? throw new ObjectDisposedException(FullPath);

    /// <summary>The directory's device and inode, by fstat on its descriptor the first time they are asked for: they cannot
    /// change while it is held (its mtime can, so nothing else is kept).</summary>
    internal (ulong Device, ulong Inode) Identity
    {
        get
        {
            var opened = _opened ?? throw new ObjectDisposedException(FullPath);
            return opened.Identity ??= Syscall.fstat(opened.Fd, out var st) == 0 ? (st.st_dev, st.st_ino) : throw PosixFiles.Failure(FullPath, "fstat", Stdlib.GetLastError());
        }
    }

    /// <summary>The full path of <paramref name="name"/> in this directory, for messages.</summary>
    public string PathOf(string name) => Path.Join(FullPath, name);

    /// <summary>lstat of the entry <paramref name="name"/>; null when there is none.</summary>
    public Stat? Entry(string name)
    {
        int errno = LibcAt.Lstat(Descriptor, name, out var st);
        return errno == 0 ? st
            : errno is LibcAt.ENOENT or LibcAt.ENOTDIR ? null : throw PosixFiles.Failure(PathOf(name), "lstat", NativeConvert.ToErrno(errno));
    }

    /// <summary>Opens the entry <paramref name="name"/> without following a link (O_NOFOLLOW is always added).</summary>
    public SafeFileHandle Open(string name, int flags, uint mode = 0)
    {
        int fd = LibcAt.OpenAt(Descriptor, name, flags | LibcAt.O_NOFOLLOW, mode);
        if (fd < 0)
            throw Failure(name, "open", -fd);
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>A new file, with no name yet, on this directory's file system (O_TMPFILE): nobody can open, replace or
    /// swap it before <see cref="Link"/> gives it one, and a crash leaves nothing of it. Null where the file system cannot
    /// make one. <paramref name="name"/> (the name it will get) is for messages.</summary>
    public SafeFileHandle? OpenUnnamed(string name, uint mode)
    {
        int fd = LibcAt.OpenAt(Descriptor, ".", LibcAt.O_TMPFILE | LibcAt.O_RDWR, mode);
        if (fd >= 0)
            return new SafeFileHandle(fd, ownsHandle: true);
        return -fd is LibcAt.EOPNOTSUPP or LibcAt.EISDIR or LibcAt.EINVAL ? null : throw Failure(name, "open", -fd);
    }

    /// <summary>linkat(2): the unnamed file <paramref name="file"/> becomes <paramref name="name"/>; 0 or the errno
    /// (EEXIST when something stands there: a link never replaces).</summary>
    public int Link(SafeFileHandle file, string name) => LibcAt.LinkAt((int)file.DangerousGetHandle(), Descriptor, name);

    /// <summary>The subdirectory <paramref name="name"/>; null when absent, or when a file or a link stands there.</summary>
    public TreeDirectory? OpenDirectory(string name)
    {
        int fd = LibcAt.OpenAt(Descriptor, name, LibcAt.O_RDONLY | LibcAt.O_DIRECTORY | LibcAt.O_NOFOLLOW);
        if (fd >= 0)
            return new TreeDirectory(fd, PathOf(name));
        return -fd is LibcAt.ENOENT or LibcAt.ENOTDIR or LibcAt.ELOOP ? null : throw Failure(name, "open directory", -fd);
    }

    /// <summary>The names in this directory ("." and ".." left out), read from its descriptor.</summary>
    public List<string> Names()
    {
        int fd = LibcAt.OpenAt(Descriptor, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY); // closedir closes what fdopendir takes
        if (fd < 0)
            throw Failure(".", "open directory", -fd);
        var dir = Syscall.fdopendir(fd);
        if (dir == IntPtr.Zero)
        {
            Libc.close(fd);
            throw PosixFiles.Failure(FullPath, "fdopendir", Stdlib.GetLastError());
        }
        return PosixFiles.ReadNames(dir, FullPath);
    }

    /// <summary>Describes the entry <paramref name="name"/> as <paramref name="logicalPath"/>, read through this directory's
    /// descriptor (lstat by fstatat, content from an O_NOFOLLOW descriptor, link by readlinkat); null when absent. A file
    /// whose version <paramref name="cache"/> knows is not read.</summary>
    public FileEntry? Describe(string name, string logicalPath, Action<FileEntry, Stat, Delta.Signature>? onSignature = null, HashCache? cache = null) =>
        PosixFiles.Describe(new PosixFiles.EntryAccess(PathOf(name), () => Entry(name), () => OpenForReading(name),
            () => LibcAt.ReadLinkAt(Descriptor, name, out _)), logicalPath, withHash: true, onSignature, cache);

    private FileStream OpenForReading(string name)
    {
        int fd = LibcAt.OpenAt(Descriptor, name, LibcAt.O_RDONLY | LibcAt.O_NOFOLLOW | LibcAt.O_NONBLOCK);
        if (fd < 0)
            throw -fd == LibcAt.ENOENT ? new FileNotFoundException($"{PathOf(name)}: gone") : Failure(name, "open", -fd);
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 1);
    }

    /// <summary>mkdirat(2); an existing entry of that name is the caller's to look at first.</summary>
    public void MakeDirectory(string name, uint mode)
    {
        if (LibcAt.MkdirAt(Descriptor, name, mode) is var errno and not 0)
            throw Failure(name, "mkdir", errno);
    }

    /// <summary>unlinkat(2); false when nothing was there.</summary>
    public bool Remove(string name, bool directory)
    {
        int errno = LibcAt.UnlinkAt(Descriptor, name, directory ? LibcAt.AT_REMOVEDIR : 0);
        return errno switch
        {
            0 => true,
            LibcAt.ENOENT => false,
            LibcAt.ENOTEMPTY or LibcAt.EEXIST => throw new IOException($"{PathOf(name)}: directory not empty on the passive (it holds excluded or unlisted files); left in place"),
            _ => throw Failure(name, directory ? "rmdir" : "unlink", errno),
        };
    }

    /// <summary>renameat(2) within this directory: <paramref name="to"/> is replaced atomically.</summary>
    public void Rename(string from, string to)
    {
        if (LibcAt.RenameAt(Descriptor, from, to) is var errno and not 0)
            throw new IOException($"{PathOf(to)}: rename from {from} failed: {LibcAt.Describe(errno)}");
    }

    /// <summary>symlinkat(2).</summary>
    public void Symlink(string target, string name)
    {
        if (LibcAt.SymlinkAt(target, Descriptor, name) is var errno and not 0)
            throw Failure(name, "symlink", errno);
    }

    /// <summary>Owner and mtime of the symlink <paramref name="name"/> itself as <paramref name="entry"/> says (fchownat and
    /// utimensat, AT_SYMLINK_NOFOLLOW); names are resolved on this node, the numeric id is the fallback. No fchownat when
    /// <paramref name="owner"/>, the owner the link has (when the caller knows it), is the wanted one.</summary>
    public void SetLinkMetadata(string name, FileEntry entry, (uint Uid, uint Gid)? owner = null)
    {
        var (uid, gid) = PosixFiles.OwnerOnThisNode(entry);
        if (owner != (uid, gid) && LibcAt.ChownLinkAt(Descriptor, name, uid, gid) is var errno and not 0)
            throw Failure(name, $"lchown to {uid}:{gid}", errno);
        SetLinkTime(name, entry);
    }

    /// <summary>The mtime of the symlink <paramref name="name"/> itself as <paramref name="entry"/> says (utimensat, AT_SYMLINK_NOFOLLOW).</summary>
    public void SetLinkTime(string name, FileEntry entry)
    {
        if (LibcAt.SetLinkTimesAt(Descriptor, name, new LibcAt.Timespec { Seconds = entry.MtimeSeconds, Nanoseconds = entry.MtimeNanoseconds }) is var errno and not 0)
            throw Failure(name, "utimensat", errno);
    }

    private IOException Failure(string name, string call, int errno) => new($"{PathOf(name)}: {call} failed: {LibcAt.Describe(errno)}", errno);

    /// <summary>Lets go of the descriptor: closed once no other holder has it.</summary>
    public void Dispose()
    {
        if (_opened is not { } opened)
            return;
        _opened = null;
        if (--opened.Holders == 0)
            Libc.close(opened.Fd);
    }
}
