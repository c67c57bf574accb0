using HaSync.Delta;
using HaSync.Interop;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>Requests that change the passive (files, directories, links, metadata, deletes), all below the root's descriptor.</summary>
public sealed partial class Agent
{
    /// <summary>Receives a file's data (whole or a delta against the current copy) into a temp file beside it,
    /// checks length and hash, sets owner, mode and mtime, and adds it to the batch. On any failure the temp
    /// file goes, the current file stays, the request's remaining data is drained, and the ack says why.</summary>
    private void Put(uint id, FileEntry entry, PutEncoding encoding, Func<Frame?> next)
    {
        var data = new DataFrameReadStream(next, id);
        TreeDirectory? directory = null;
        TreeFile? file = null;
        try
        {
            if (entry.Kind != EntryKind.File || entry.Hash is null)
                throw new IOException($"{entry.Path}: a file sent must be described as a regular file with its hash");
            string name = TreeWalker.NameOf(entry.Path);
            directory = guard.OpenParent(entry.Path, create: true, out var existing)!;
            string full = directory.PathOf(name);
            if (existing is { } e && PosixFiles.KindOf(e) == EntryKind.Directory)
                throw new IOException($"{full}: is a directory on the passive");
            if (LocalChangeAt(directory, entry.Path, existing, entry) is { } conflict)
            {
                KeepIncoming(entry, encoding, data, directory, conflict);
                return;
            }
            _directories.Before(directory);
            file = TreeFile.Create(directory, name, replaces: existing is not null, entry.Mode);
            directory = null; // the file holds it now, until its rename
            var hashing = new HashingWriteStream(file.Stream, entry.Size);
            Receive(encoding, data, hashing, file.Directory, name, entry);
            data.Drain();
            if (hashing.Finish() is not { } received || !received.AsSpan().SequenceEqual(entry.Hash))
            {
                // A delta that did not rebuild the file, or a file that changed on the active while it was sent.
                string what = hashing.Distrusted ?? $"{full}: received {hashing.Written} bytes whose hash differs from the active's ({entry.Size} bytes, {entry.HashHex})";
                log.WriteLine($"hasync serve: {what}");
                file.Dispose();
                _deferredAcks.Add((id, AckStatus.HashMismatch, what));
                return;
            }
            file.Seal(entry);
            Seal(id, entry, file);
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            string message = file?.InTermsOfTarget(e.Message) ?? e.Message;
            file?.Dispose();
            data.Drain();
            log.WriteLine($"hasync serve: {message}");
            _deferredAcks.Add((id, PosixFiles.IsNoSpace(e) ? AckStatus.NoSpace : AckStatus.Failed, message)); // in order with the batch's other answers
        }
        finally
        {
            directory?.Dispose();
        }
    }

    /// <summary>A PutFile's data into <paramref name="into"/>: as is, or a delta applied to the passive's copy,
    /// <paramref name="name"/> in <paramref name="directory"/>. A basis whose exact version the manifest hashed lends its
    /// block digests to the check of the result, and must still be that version when the delta is applied: else the
    /// result is not trusted (no hash), and the sender learns that the file differs.</summary>
    private void Receive(PutEncoding encoding, Stream data, HashingWriteStream into, TreeDirectory directory, string name, FileEntry entry)
    {
        if (encoding == PutEncoding.Delta)
        {
            using var basis = OpenRegularFile(directory, name, out var version);
            bool lent = TakeDeltaBasis(entry.Path) is { } hashed && PosixFiles.SameVersion(hashed.Version, version)
                && into.UseBasisDigests(hashed.Signature, basis.Length);
            DeltaPatcher.Apply(new ReplacedBasis(basis), data, into, maxOutputLength: entry.Size);
            if (lent && (Mono.Unix.Native.Syscall.fstat((int)basis.SafeFileHandle.DangerousGetHandle(), out var after) != 0 || !PosixFiles.SameVersion(version, after)))
                into.Distrust($"{directory.PathOf(name)} changed on the passive while a delta was applied to it");
        }
        else
        {
            CopyAtMost(data, into, entry.Size, directory.PathOf(name));
        }
    }

    private static void CopyAtMost(Stream from, Stream to, long limit, string target)
    {
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Wire.DataChunk); // not 256 KiB of garbage per file
        try
        {
            long total = 0;
            int read;
            while ((read = from.Read(buffer, 0, Wire.DataChunk)) > 0)
            {
                total += read;
                if (total > limit)
                    throw new IOException($"{target}: more data than the announced {limit} bytes");
                to.Write(buffer, 0, read);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Runs <paramref name="change"/> in <paramref name="directory"/> and hands the directory on (its file system is
    /// synced at the commit); closes it if the change fails.</summary>
    private static TreeDirectory Changed(TreeDirectory directory, Action change)
    {
        try
        {
            change();
            return directory;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    private TreeDirectory MakeDirectory(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
        {
            var root = guard.OpenRoot(); // its metadata only: it exists
            return Changed(root, () =>
            {
                using var self = root.Open(".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
                PosixFiles.ApplyMetadata(self, root.FullPath, entry);
                _directories.Want(self, entry.MtimeSeconds, entry.MtimeNanoseconds);
                _sync.Touch(self, root.FullPath);
            });
        }
        string name = TreeWalker.NameOf(entry.Path);
        var directory = guard.OpenParent(entry.Path, create: true, out var existing)!;
        return Changed(directory, () =>
        {
            if (existing is { } st)
            {
                if (PosixFiles.KindOf(st) != EntryKind.Directory)
                    throw new IOException($"{directory.PathOf(name)}: exists on the passive and is not a directory");
            }
            else
            {
                _directories.Before(directory);
                directory.MakeDirectory(name, 0x1c0); // 0700 until its metadata is set
            }
            using var made = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_DIRECTORY);
            PosixFiles.ApplyMetadata(made, directory.PathOf(name), entry);
            _directories.Want(made, entry.MtimeSeconds, entry.MtimeNanoseconds); // again at the commit: its entries move it
            _sync.Touch(made, directory.PathOf(name));
        });
    }

    private TreeDirectory MakeSymlink(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
            throw new ConfinementException("refusing to replace the root with a symlink");
        string name = TreeWalker.NameOf(entry.Path);
        string target = entry.LinkTarget ?? throw new IOException($"{entry.Path}: symlink without a target");
        var directory = guard.OpenParent(entry.Path, create: true, out var st)!;
        return Changed(directory, () =>
        {
            if (st is { } e && PosixFiles.KindOf(e) == EntryKind.Directory)
                throw new IOException($"{directory.PathOf(name)}: is a directory on the passive");
            if (LocalChangeAt(directory, entry.Path, st, entry) is { } conflict)
                throw new ConflictException($"{conflict}; left as it is (the active has a symlink to {target})");
            // A new name gets the link at once (symlinkat makes it whole, or fails if something appeared meanwhile); one
            // that replaces an entry is made beside it, owned and timed on the link itself, and renamed over it.
            string made = st is null ? name : AtomicFile.TempNameFor(name);
            _directories.Before(directory);
            directory.Symlink(target, made);
            Mono.Unix.Native.Stat? now = null;
            try
            {
                if (made == name)
                {
                    // Made by the agent, so owned by it (most of /etc is root's, as the agent is): its time is set, and the
                    // lstat the journal records then says whether its owner must change too (one fchownat less per link).
                    directory.SetLinkTime(name, entry);
                    now = directory.Entry(name);
                    if (now is { } link && (link.st_uid, link.st_gid) != PosixFiles.OwnerOnThisNode(entry))
                    {
                        directory.SetLinkMetadata(name, entry);
                        now = null;
                    }
                }
                else
                {
                    directory.SetLinkMetadata(made, entry);
                    directory.Rename(made, name);
                }
            }
            catch
            {
                directory.Remove(made, directory: false);
                throw;
            }
            Record(entry, directory, now);
        });
    }

    private TreeDirectory SetMetadata(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
            return MakeDirectory(entry);
        string name = TreeWalker.NameOf(entry.Path);
        var directory = guard.OpenParent(entry.Path, create: false, out var existing) ?? throw new IOException($"{guard.Locate(entry.Path)}: does not exist on the passive");
        return Changed(directory, () =>
        {
            string full = directory.PathOf(name);
            if (existing is not { } st)
                throw new IOException($"{full}: does not exist on the passive");
            if (PosixFiles.KindOf(st) != entry.Kind)
                throw new IOException($"{full}: is a {PosixFiles.KindOf(st)} on the passive, not a {entry.Kind}");
            if (LocalChangeAt(directory, entry.Path, st, entry) is { } conflict)
                throw new ConflictException($"{conflict}; left as it is");
            if (entry.Kind == EntryKind.Symlink)
                directory.SetLinkMetadata(name, entry, owner: (st.st_uid, st.st_gid));
            else
            {
                // O_NONBLOCK: opening never waits (a FIFO swapped in); the descriptor must still be the entry looked at.
                using var self = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK);
                if (Mono.Unix.Native.Syscall.fstat((int)self.DangerousGetHandle(), out var opened) != 0 || opened.st_ino != st.st_ino || opened.st_dev != st.st_dev)
                    throw new IOException($"{full}: replaced while its metadata was being set; left for the next try");
                PosixFiles.ApplyMetadata(self, full, entry, (opened.st_uid, opened.st_gid));
                _sync.Touch(self, full);
                if (entry.Kind == EntryKind.Directory)
                    _directories.Want(self, entry.MtimeSeconds, entry.MtimeNanoseconds);
            }
            Record(entry, directory); // also adopts a file found identical on first contact
        });
    }

    private TreeDirectory Delete(string logicalPath)
    {
        if (PathGuard.IsRoot(logicalPath))
            throw new ConfinementException("refusing to delete the root");
        string name = TreeWalker.NameOf(logicalPath);
        // No directory there (a file or a link replaced a parent): no entry of the tree stands at the path, the delete is done.
        var directory = guard.OpenParent(logicalPath, create: false, out var existing);
        if (directory is null)
            return guard.OpenRoot();
        return Changed(directory, () =>
        {
            if (existing is not { } st)
                return; // already gone: deleting is idempotent
            _directories.Before(directory);
            if (PosixFiles.KindOf(st) == EntryKind.Directory)
            {
                guard.ForgetOpened(); // it may be one held for the requests that follow
                directory.Remove(name, directory: true);
            }
            else
            {
                if (LocalChangeAt(directory, logicalPath, st, incoming: null) is { } conflict)
                    throw new ConflictException($"{conflict}; not deleted, though it is gone on the active");
                directory.Remove(name, directory: false);
                Journal.Removed(logicalPath);
                Settled(logicalPath);
            }
        });
    }
}
