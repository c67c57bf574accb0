using HaSync.Interop;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>
/// The file systems a batch of changes touched, each held by a descriptor on a directory opened when the change
/// was made. The commit's syncfs goes through these descriptors, never through paths looked up again at commit
/// time: a directory that a later change of the same batch removed or replaced by a file would otherwise fail
/// the whole commit, although every change in it was made.
/// </summary>
internal sealed class BatchFileSystems : IDisposable
{
    private readonly Dictionary<ulong, int> _descriptors = []; // st_dev -> an open directory on it

    /// <summary>Remembers the file system holding <paramref name="directory"/> (the agent's state directory, root's own).</summary>
    public void Touch(string directory)
    {
        if (PosixFiles.TryLstat(directory, out var st) && !_descriptors.ContainsKey(st.st_dev))
            Keep(st.st_dev, LibcAt.OpenAt(LibcAt.AT_FDCWD, directory, LibcAt.O_RDONLY | LibcAt.O_DIRECTORY | LibcAt.O_NOFOLLOW));
    }

    /// <summary>Remembers the file system holding the open <paramref name="directory"/> (a descriptor of its own is kept).</summary>
    public void Touch(TreeDirectory directory)
    {
        if (!_descriptors.ContainsKey(directory.Identity.Device))
            Keep(directory.Identity.Device, LibcAt.OpenAt(directory.Descriptor, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY));
    }

    private void Keep(ulong device, int fd)
    {
        if (fd >= 0)
            _descriptors[device] = fd;
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
    }

    /// <inheritdoc cref="Clear"/>
    public void Dispose() => Clear();
}
