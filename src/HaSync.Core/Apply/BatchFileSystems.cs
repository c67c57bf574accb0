using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// The file systems a batch of changes touched, each held by a descriptor on a directory opened when the change
/// was made. The commit's syncfs goes through these descriptors, never through paths looked up again at commit
/// time: a directory that a later change of the same batch removed or replaced by a file would otherwise fail
/// the whole commit, although every change in it was made.
/// </summary>
internal sealed class BatchFileSystems : IDisposable
{
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal); // directories already looked at in this batch
    private readonly Dictionary<ulong, int> _descriptors = [];            // st_dev -> an open directory on it

    /// <summary>Remembers the file system holding <paramref name="directory"/> (or its nearest existing parent).</summary>
    public void Touch(string directory)
    {
        for (string? d = directory; d is not null && _seen.Add(d); d = Path.GetDirectoryName(d))
        {
            int fd = Libc.open(d, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC);
            if (fd < 0)
                continue; // gone already, or replaced by a file or a link: its parent's file system recorded that
            if (Mono.Unix.Native.Syscall.fstat(fd, out var st) == 0 && _descriptors.TryAdd(st.st_dev, fd))
                return;
            Libc.close(fd);
            return;
        }
    }

    /// <summary>Remembers the file system holding the open <paramref name="directory"/> (a descriptor of its own is kept).</summary>
    public void Touch(TreeDirectory directory)
    {
        if (Mono.Unix.Native.Syscall.fstat(directory.Descriptor, out var st) != 0 || _descriptors.ContainsKey(st.st_dev))
            return;
        int fd = LibcAt.OpenAt(directory.Descriptor, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
        if (fd >= 0)
            _descriptors[st.st_dev] = fd;
    }

    /// <summary>syncfs(2) on each file system touched.</summary>
    /// <exception cref="IOException">A file system could not be flushed: what was written there may not be on disk.</exception>
    public void SyncAll()
    {
        foreach (int fd in _descriptors.Values)
            Libc.SyncFileSystem(fd);
    }

    /// <summary>Closes the descriptors; the next batch starts empty.</summary>
    public void Clear()
    {
        foreach (int fd in _descriptors.Values)
            Libc.close(fd);
        _descriptors.Clear();
        _seen.Clear();
    }

    /// <inheritdoc cref="Clear"/>
    public void Dispose() => Clear();
}
