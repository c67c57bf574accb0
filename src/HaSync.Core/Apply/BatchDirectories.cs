using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// The directories a batch changes entries in, and the modification time each must have once the batch is in place:
/// the one the sender asked for (a directory made, or its metadata set, in the batch), else the one it had before the
/// batch touched it. A directory's mtime moves with every entry made, renamed or removed in it, and the agent's own
/// temp files and renames would otherwise leave the passive's directories with times of their own (rsync -a sets
/// them last for the same reason). Each directory is held by a descriptor opened when the change was made.
/// </summary>
internal sealed class BatchDirectories : IDisposable
{
    private sealed class Held(int fd, LibcAt.Timespec time)
    {
        public int Fd { get; } = fd;
        public LibcAt.Timespec Time { get; set; } = time;
    }

    private readonly Dictionary<(ulong Device, ulong Inode), Held> _held = [];

    /// <summary>Before an entry of <paramref name="directory"/> is made, renamed or removed: its time as it stands.</summary>
    public void Before(TreeDirectory directory)
    {
        if (!_held.ContainsKey(directory.Identity)) // held already: its time before the batch is known
            Hold(directory.Descriptor, wanted: null);
    }

    /// <summary>The sender asks <paramref name="directory"/> (an open descriptor of the directory itself) to have this time.</summary>
    public void Want(Microsoft.Win32.SafeHandles.SafeFileHandle directory, long seconds, uint nanoseconds) =>
        Hold((int)directory.DangerousGetHandle(), new LibcAt.Timespec { Seconds = seconds, Nanoseconds = nanoseconds });

    private void Hold(int fd, LibcAt.Timespec? wanted)
    {
        if (Mono.Unix.Native.Syscall.fstat(fd, out var st) != 0)
            return;
        var id = (st.st_dev, st.st_ino);
        if (_held.TryGetValue(id, out var held))
        {
            if (wanted is { } time)
                held.Time = time;
            return;
        }
        int own = LibcAt.OpenAt(fd, ".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
        if (own >= 0)
            _held[id] = new Held(own, wanted ?? new LibcAt.Timespec { Seconds = st.st_mtime, Nanoseconds = st.st_mtime_nsec });
    }

    /// <summary>Once the batch's renames are done: each directory gets its time. A directory that cannot is named in
    /// the returned messages; the changes in it stand.</summary>
    public List<string> Apply()
    {
        var problems = new List<string>();
        foreach (var held in _held.Values)
            if (LibcAt.Futimens(held.Fd, held.Time) is var errno and not 0)
                problems.Add($"setting a directory's time: {LibcAt.Describe(errno)}");
        return problems;
    }

    /// <summary>Closes the descriptors; the next batch starts empty.</summary>
    public void Clear()
    {
        foreach (var held in _held.Values)
            Libc.close(held.Fd);
        _held.Clear();
    }

    /// <inheritdoc cref="Clear"/>
    public void Dispose() => Clear();
}
