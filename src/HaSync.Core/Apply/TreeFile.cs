using HaSync.Interop;
using HaSync.Scanning;
using Microsoft.Win32.SafeHandles;

namespace HaSync.Apply;

/// <summary>
/// A file being received into the passive tree: a 0600 temp file made beside its target through the parent's
/// descriptor (O_CREAT | O_EXCL | O_NOFOLLOW: never an existing file, never through a link), its owner, mode and
/// times set on its own descriptor, and renamed over the target (renameat in the same held directory) only if the
/// temp name still holds that very inode. Until then a reader sees the old complete file. Disposing without
/// <see cref="Publish"/> removes the temp file, if it is still ours, and leaves the target untouched.
/// </summary>
public sealed class TreeFile : IDisposable
{
    private readonly TreeDirectory _directory; // owned, held until the rename
    private readonly string _name, _tempName;
    private readonly ulong _device, _inode;    // of the temp file we created
    private readonly (uint Uid, uint Gid) _owner; // the temp file's, as created
    private bool _published, _durable;

    private readonly SafeFileHandle _handle;

    private TreeFile(TreeDirectory directory, string name, string tempName, SafeFileHandle handle, Mono.Unix.Native.Stat created)
    {
        (_directory, _name, _tempName, _handle) = (directory, name, tempName, handle);
        (_device, _inode, _owner) = (created.st_dev, created.st_ino, (created.st_uid, created.st_gid));
        Stream = new AppendStream((int)handle.DangerousGetHandle(), directory.PathOf(tempName));
    }

    /// <summary>Where the content goes, from its start.</summary>
    public Stream Stream { get; }

    /// <summary>The directory the file is received in, held until the rename.</summary>
    public TreeDirectory Directory => _directory;

    /// <summary>The file <see cref="Publish"/> replaces (for messages and the journal).</summary>
    public string TargetPath => _directory.PathOf(_name);

    /// <summary>A temp file beside <paramref name="name"/> in <paramref name="directory"/>, which the new file now owns.</summary>
    public static TreeFile Create(TreeDirectory directory, string name)
    {
        string temp = AtomicFile.TempNameFor(name);
        var handle = directory.Open(temp, LibcAt.O_RDWR | LibcAt.O_CREAT | LibcAt.O_EXCL, mode: 0x180 /* 0600 */);
        if (Mono.Unix.Native.Syscall.fstat((int)handle.DangerousGetHandle(), out var st) != 0)
        {
            handle.Dispose();
            throw PosixFiles.Failure(directory.PathOf(temp), "fstat", Mono.Unix.Native.Stdlib.GetLastError());
        }
        return new TreeFile(directory, name, temp, handle, st);
    }

    /// <summary>Sets owner, mode and times on the complete file's own descriptor and, unless it is small, starts writing
    /// its data back; the descriptor stays open for <see cref="MakeDurable"/> (the agent's group commit makes a whole batch
    /// durable before renaming any of it).</summary>
    public void Seal(FileEntry entry)
    {
        PosixFiles.ApplyMetadata(_handle, TargetPath, entry, _owner);
        if (entry.Size >= EarlyWritebackSize)
            Libc.StartWriteback((int)_handle.DangerousGetHandle());
    }

    /// <summary>Below this, a file's few pages go with its fsync or the batch's syncfs: a call per file to start them
    /// earlier costs a burst of small files more than it saves.</summary>
    private const long EarlyWritebackSize = 64 << 10;

    /// <summary>fsync of the sealed temp file (its content, owner, mode and times on disk: a rename made durable before them
    /// would leave an empty or root-owned file after a crash), unless <paramref name="fileSystemSynced"/> (a syncfs did it);
    /// then its descriptor is closed.</summary>
    public void MakeDurable(bool fileSystemSynced)
    {
        if (!fileSystemSynced)
            Libc.Sync((int)_handle.DangerousGetHandle(), TargetPath);
        _handle.Dispose();
        _durable = true;
    }

    /// <summary>Renames the sealed, durable temp file over the target, if the temp name still holds the file received.</summary>
    public void Publish()
    {
        if (!_durable)
            throw new InvalidOperationException($"{TargetPath}: published before its data was on disk");
        if (_directory.Entry(_tempName) is not { } now || now.st_dev != _device || now.st_ino != _inode)
            throw new IOException($"{TargetPath}: its temp file {_tempName} was replaced or removed before the rename; not published");
        _directory.Rename(_tempName, _name);
        _published = true;
    }

    /// <summary>An error's message with the temp file's name replaced by the target's: the admin knows the target, and the
    /// same cause reads the same at every try.</summary>
    public string InTermsOfTarget(string message) => message.Replace(_directory.PathOf(_tempName), TargetPath, StringComparison.Ordinal);

    /// <summary>Removes the temp file unless published (and only if it is still the one made here); closes the directory.</summary>
    public void Dispose()
    {
        _handle.Dispose();
        try
        {
            if (!_published && _directory.Entry(_tempName) is { } st && st.st_dev == _device && st.st_ino == _inode)
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
