using HaSync.Interop;
using HaSync.Scanning;
using Microsoft.Win32.SafeHandles;

namespace HaSync.Apply;

/// <summary>
/// A file being received into the passive tree, made through its parent's descriptor, its owner, mode and times set on
/// its own descriptor, and put in place at the commit. Until then a reader sees the old complete file, or none.
/// <list type="bullet">
/// <item>A new name's file is made unnamed (O_TMPFILE) and linked in (linkat, which never replaces: a file that appeared
/// there meanwhile is left as it is). No temp name is made, renamed and removed: that directory work was most of the
/// agent's time in a burst of new files, and no local user can swap a file that has no name.</item>
/// <item>A file that replaces one (or a new one where the file system has no O_TMPFILE) is a 0600 temp file beside its
/// target (O_CREAT | O_EXCL | O_NOFOLLOW: never an existing file, never through a link), renamed over the target
/// (renameat in the same held directory) only if the temp name still holds that very inode.</item>
/// </list>
/// Disposing without <see cref="Publish"/> removes the temp file, if it is still ours, and leaves the target untouched.
/// </summary>
public sealed class TreeFile : IDisposable
{
    private readonly TreeDirectory _directory; // owned, held until the link or rename
    private readonly string _name;
    private readonly string? _tempName;        // null: unnamed until linked
    private readonly ulong _device, _inode;    // of the file we created
    private readonly (uint Uid, uint Gid) _owner; // the file's, as created
    private readonly uint _mode;                  // its permission bits, as created (the umask applied)
    private bool _published, _durable;
    private bool _unwritten; // sealed with data whose writeback is not started yet

    private readonly SafeFileHandle _handle;

    private TreeFile(TreeDirectory directory, string name, string? tempName, SafeFileHandle handle, Mono.Unix.Native.Stat created)
    {
        (_directory, _name, _tempName, _handle) = (directory, name, tempName, handle);
        (_device, _inode, _owner, _mode) = (created.st_dev, created.st_ino, (created.st_uid, created.st_gid), (uint)created.st_mode & ModeBits.All);
        Stream = new AppendStream((int)handle.DangerousGetHandle(), directory.PathOf(tempName ?? name));
    }

    /// <summary>Where the content goes, from its start.</summary>
    public Stream Stream { get; }

    /// <summary>The directory the file is received in, held until the link or rename.</summary>
    public TreeDirectory Directory => _directory;

    /// <summary>The file <see cref="Publish"/> makes or replaces (for messages and the journal).</summary>
    public string TargetPath => _directory.PathOf(_name);

    /// <summary>The file that will be <paramref name="name"/> in <paramref name="directory"/>, which the new file now owns;
    /// <paramref name="replaces"/> when an entry stands there; <paramref name="mode"/> is the one it is to have.</summary>
    public static TreeFile Create(TreeDirectory directory, string name, bool replaces, uint mode)
    {
        const uint Private = 0x180; // a temp file that has a name: 0600 until sealed
        string? temp = null;
        // A file with no name cannot be opened by anyone else: made with its permission bits (never set-id ones, which
        // Seal sets after the owner), it needs no fchmod when the umask left them whole, as it mostly does.
        var handle = replaces ? null : directory.OpenUnnamed(name, mode & ModeBits.Permissions);
        if (handle is null)
        {
            temp = AtomicFile.TempNameFor(name);
            handle = directory.Open(temp, LibcAt.O_RDWR | LibcAt.O_CREAT | LibcAt.O_EXCL, Private);
        }
        if (Mono.Unix.Native.Syscall.fstat((int)handle.DangerousGetHandle(), out var st) != 0)
        {
            var errno = Mono.Unix.Native.Stdlib.GetLastError();
            handle.Dispose(); // an unnamed file goes with its descriptor
            if (temp is not null)
                directory.Remove(temp, directory: false);
            throw PosixFiles.Failure(directory.PathOf(temp ?? name), "fstat", errno);
        }
        return new TreeFile(directory, name, temp, handle, st);
    }

    /// <summary>Sets owner, mode and times on the complete file's own descriptor and, unless it is small, starts writing
    /// its data back; the descriptor stays open for <see cref="MakeDurable"/> (the agent's group commit makes a whole batch
    /// durable before renaming any of it).</summary>
    public void Seal(FileEntry entry)
    {
        PosixFiles.ApplyMetadata(_handle, TargetPath, entry, _owner, _mode);
        _unwritten = entry.Size > 0;
        if (entry.Size >= EarlyWritebackSize)
            StartWriteback();
    }

    /// <summary>Below this, a file's few pages go with its fsync or the batch's syncfs, or with <see cref="StartWriteback"/>
    /// when the agent has nothing else to do: a call per file as it is sealed costs a burst of small files more than it saves.</summary>
    private const long EarlyWritebackSize = 64 << 10;

    /// <summary>Starts writing the sealed file's data back without waiting, so that the commit's flush finds less to do;
    /// once per file (nothing for an empty one).</summary>
    public void StartWriteback()
    {
        if (!_unwritten)
            return;
        _unwritten = false;
        Libc.StartWriteback((int)_handle.DangerousGetHandle());
    }

    /// <summary>fsync of the sealed file (its content, owner, mode and times on disk: a link or rename made durable before
    /// them would leave an empty or root-owned file after a crash), unless <paramref name="fileSystemSynced"/> (a syncfs did
    /// it). The descriptor stays open: an unnamed file is linked through it.</summary>
    public void MakeDurable(bool fileSystemSynced)
    {
        if (!fileSystemSynced)
            Libc.Sync((int)_handle.DangerousGetHandle(), TargetPath);
        _durable = true;
    }

    /// <summary>Puts the sealed, durable file in place: links an unnamed one in, or renames the temp file over the target
    /// if the temp name still holds the file received. Returns the version now published (fstat of the file itself: what
    /// the journal records, whatever a local user does to the name meanwhile), and closes the descriptor.</summary>
    public Mono.Unix.Native.Stat Publish()
    {
        if (!_durable)
            throw new InvalidOperationException($"{TargetPath}: published before its data was on disk");
        if (_tempName is null)
        {
            int errno = _directory.Link(_handle, _name);
            if (errno == LibcAt.EEXIST)
                throw new IOException($"{TargetPath}: a file appeared there on the passive while the new one was received; left as it is, not replaced");
            if (errno != 0)
                throw new IOException($"{TargetPath}: linkat failed: {LibcAt.Describe(errno)}", errno);
        }
        else
        {
            if (_directory.Entry(_tempName) is not { } now || now.st_dev != _device || now.st_ino != _inode)
                throw new IOException($"{TargetPath}: its temp file {_tempName} was replaced or removed before the rename; not published");
            _directory.Rename(_tempName, _name);
        }
        _published = true;
        bool known = Mono.Unix.Native.Syscall.fstat((int)_handle.DangerousGetHandle(), out var published) == 0;
        var why = Mono.Unix.Native.Stdlib.GetLastError();
        _handle.Dispose();
        return known ? published : throw PosixFiles.Failure(TargetPath, "fstat", why);
    }

    /// <summary>An error's message with the temp file's name replaced by the target's: the admin knows the target, and the
    /// same cause reads the same at every try.</summary>
    public string InTermsOfTarget(string message) =>
        _tempName is null ? message : message.Replace(_directory.PathOf(_tempName), TargetPath, StringComparison.Ordinal);

    /// <summary>Removes the temp file unless published (and only if it is still the one made here; an unnamed file goes
    /// with its descriptor); closes the directory.</summary>
    public void Dispose()
    {
        _handle.Dispose();
        try
        {
            if (!_published && _tempName is not null && _directory.Entry(_tempName) is { } st && st.st_dev == _device && st.st_ino == _inode)
                _directory.Remove(_tempName, directory: false);
        }
        catch (IOException)
        {
            // The temp file stays: it is a hidden name of HaSync's own, an extra the next resync removes.
        }
        _directory.Dispose();
    }

    /// <summary>Writes a new file from its start through its descriptor (held by the TreeFile until it is sealed), pwrite(2)
    /// by pwrite, the position kept here: a FileStream, or RandomAccess, would ask the kernel for it (lseek) first. A large
    /// file's writeback is started every <see cref="WritebackStep"/> bytes, so that the disk works while the rest arrives
    /// and the fsync at the commit waits for the last step only.</summary>
    private sealed class AppendStream(int fd, string path) : Protocol.WriteOnlyStream
    {
        private const long WritebackStep = 8 << 20;
        private long _written, _writtenBack;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Libc.WriteAt(fd, buffer, _written, path);
            _written += buffer.Length;
            if (_written - _writtenBack >= WritebackStep)
            {
                Libc.StartWriteback(fd, _writtenBack, _written - _writtenBack);
                _writtenBack = _written;
            }
        }

        public override long Length => _written;
    }
}
