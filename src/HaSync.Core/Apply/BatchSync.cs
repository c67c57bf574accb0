using HaSync.Interop;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>
/// What a batch changed in place and must fsync before its acks: each directory an entry was made, renamed or removed
/// in (a rename is durable once its directory is), and each file or directory whose owner, mode or time was set. Each is
/// held by a descriptor of its own, opened when the change was made: a directory that a later change of the same batch
/// removed or replaced would otherwise fail the whole commit, although every change in it was made. One fsync per
/// inode, not a syncfs: an ack waits for the batch's own changes, never for another writer's data on the same file
/// system (a backup, a log burst). But each fsync also flushes the disk's cache (ext4 issues a flush even when its
/// journal has already committed the inode): a cold copy of /etc, 500 inodes, took 0.4 s of fsyncs against 20 ms for two
/// syncfs. So a batch of more than <see cref="MaxPerInode"/> inodes is flushed by one syncfs per file system instead: a
/// large batch is a bulk copy, where throughput matters more than another writer's share of the flush. (A symlink cannot
/// be fsynced: its directory's fsync makes it durable, with its owner and times on the journalling file systems.)
/// </summary>
internal sealed class BatchSync : IDisposable
{
    private readonly Dictionary<(ulong Device, ulong Inode), (int Fd, string Path)> _held = [];

    /// <summary>Above this many inodes (the batch's new files counted), a batch is flushed by syncfs.</summary>
    public const int MaxPerInode = 16;

    /// <summary>True when a batch with <paramref name="newFiles"/> temp files, and what is held here, is flushed inode by inode.</summary>
    public bool PerInode(int newFiles) => newFiles + _held.Count <= MaxPerInode;

    /// <summary>The agent's state directory (where the journal and conflict copies are made).</summary>
    public void Touch(string directory)
    {
        if (PosixFiles.TryLstat(directory, out var st) && !_held.ContainsKey((st.st_dev, st.st_ino)))
            Keep((st.st_dev, st.st_ino), LibcAt.OpenAt(LibcAt.AT_FDCWD, directory, LibcAt.O_RDONLY | LibcAt.O_DIRECTORY | LibcAt.O_NOFOLLOW), directory);
    }

    /// <summary>A directory the batch changed an entry of.</summary>
    public void Touch(TreeDirectory directory)
    {
        if (!_held.ContainsKey(directory.Identity))
            Keep(directory.Identity, LibcAt.OpenAt(directory.Descriptor, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY), directory.FullPath);
    }

    /// <summary>A file or directory whose metadata the batch set through <paramref name="handle"/> (a descriptor of its own is kept).</summary>
    public void Touch(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path)
    {
        int fd = (int)handle.DangerousGetHandle();
        if (Mono.Unix.Native.Syscall.fstat(fd, out var st) == 0 && PosixFiles.KindOf(st) is EntryKind.File or EntryKind.Directory
            && !_held.ContainsKey((st.st_dev, st.st_ino)))
            Keep((st.st_dev, st.st_ino), Libc.Duplicate(fd), path);
    }

    private void Keep((ulong, ulong) id, int fd, string path)
    {
        if (fd >= 0)
            _held[id] = (fd, path);
    }

    /// <summary>fsync(2) of each (<paramref name="perInode"/>), or syncfs(2) of each file system they are on.</summary>
    /// <exception cref="IOException">One could not be flushed: what the batch changed there may not be on disk.</exception>
    public void SyncAll(bool perInode)
    {
        if (perInode)
        {
            foreach (var (fd, path) in _held.Values)
                Libc.Sync(fd, path);
            return;
        }
        foreach (var (_, (fd, path)) in _held.DistinctBy(h => h.Key.Device))
            Libc.SyncFileSystem(fd, path);
    }

    /// <summary>Closes the descriptors; the next batch starts empty.</summary>
    public void Clear()
    {
        foreach (var (fd, _) in _held.Values)
            Libc.close(fd);
        _held.Clear();
    }

    /// <inheritdoc cref="Clear"/>
    public void Dispose() => Clear();
}
