using HaSync.Delta;
using HaSync.Guard;
using HaSync.Interop;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>Answers that read the passive (manifests, signatures, content), all below the root's descriptor.</summary>
public sealed partial class Agent
{
    private void SendManifest(uint id, List<string> paths, FrameWriter writer)
    {
        foreach (string path in paths)
            guard.Locate(path); // refuses paths outside the allowed set before listing anything
        // Sent as the walk goes (the sender sorts them): it sees the passive's side of the compare advance, and a large tree
        // is never held here whole.
        // Until the journal is read (see _journalRead), entries wait for their check.
        PayloadWriter? batch = null;
        var waiting = new List<FileEntry>();
        void Send(FileEntry entry)
        {
            if (batch is null || batch.Length > 60_000)
            {
                if (batch is not null)
                    writer.Write(FrameType.ManifestEntries, batch);
                batch = new PayloadWriter().U32(id);
            }
            _manifests.Write(batch, entry);
            batch.U8((byte)(AtomicFile.IsTempName(Path.GetFileName(entry.Path)) ? LocalChange.None : Journal.Check(entry)));
        }
        _hashes ??= HashCache.Load(_hashesPath, problem => log.WriteLine($"hasync serve: {problem}"));
        var seen = WalkBelowRoot(paths, entry =>
        {
            waiting.Add(entry);
            if (!_journalRead.IsCompleted)
                return;
            waiting.ForEach(Send);
            waiting.Clear();
        });
        waiting.ForEach(Send);
        if (batch is not null)
            writer.Write(FrameType.ManifestEntries, batch);
        writer.Write(FrameType.ManifestEnd, new PayloadWriter().U32(id));
        var walked = paths.ToHashSet(StringComparer.Ordinal);
        _hashes.ForgetWhere(path => !seen.Contains(path) && TreeWalker.WithinAny(path, walked)); // gone from the passive
    }

    /// <summary>Keeps the hash cache for the next session, if this one's manifests changed it (after the answer is sent:
    /// the sender compares meanwhile).</summary>
    private void SaveHashes() => _hashes?.SaveIfChanged(_hashesPath, problem => log.WriteLine($"hasync serve: {problem}"));

    /// <summary>Gives <paramref name="each"/> the entries at and below <paramref name="paths"/> (depth first, names in order;
    /// not quite path order), each read through its directory's descriptor from the root down (no link followed, whatever
    /// is swapped in meanwhile); a path behind a file or a link has nothing to list. Returns the paths looked at.</summary>
    private HashSet<string> WalkBelowRoot(IEnumerable<string> paths, Action<FileEntry> each)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Visit(TreeDirectory directory, string name, string logical)
        {
            if (!seen.Add(logical))
                return;
            FileEntry? entry;
            try
            {
                entry = directory.Describe(name, logical, Remember, _hashes);
            }
            catch (FileChangedException e)
            {
                // Left out: the sender then sends it, and the write checks what stands there at that moment.
                log.WriteLine($"hasync serve: manifest: {e.Message}; left out of this answer");
                return;
            }
            if (entry is null)
                return;
            if (entry.Kind != EntryKind.Directory)
            {
                each(entry);
                return;
            }
            using var below = name == "." ? guard.OpenRoot() : directory.OpenDirectory(name);
            if (below is not null && guard.IsForbidden(below))
                return; // the agent's own state is not part of the tree it serves
            each(entry);
            if (below is null)
                return; // replaced since its lstat: the next manifest sees what stands there
            foreach (string child in below.Names().Order(StringComparer.Ordinal))
                Visit(below, child, TreeWalker.Child(logical, child));
        }
        foreach (string path in paths.Order(StringComparer.Ordinal))
        {
            using var directory = PathGuard.IsRoot(path) ? guard.OpenRoot() : guard.OpenParent(path, create: false);
            if (directory is not null)
                Visit(directory, PathGuard.IsRoot(path) ? "." : TreeWalker.NameOf(path), path);
        }
        return seen;
    }

    private static void SendData(uint id, byte[] data, FrameWriter writer)
    {
        using var frames = new DataFrameWriteStream(writer, id);
        frames.Write(data);
        frames.Flush();
        writer.Write(FrameType.DataEnd, new PayloadWriter().U32(id));
    }

    /// <summary>Keeps the signature the manifest's hash pass produced, for the delta request that usually follows.</summary>
    private void Remember(FileEntry entry, Mono.Unix.Native.Stat version, Signature signature)
    {
        long length = CachedLength(signature);
        if (_signatures.Remove(entry.Path, out var before))
            _signatureBytes -= CachedLength(before.Signature); // an older version, from an earlier manifest
        if (_signatureBytes + length > MaxCachedSignatureBytes)
            return;
        _signatures[entry.Path] = (version, signature);
        _signatureBytes += length;
    }

    private static long CachedLength(Signature signature) => (long)signature.Count * (4 + signature.Parameters.StrongLength);

    /// <summary>The signature of the passive's copy: from the cache when that exact version (inode, size, mtime and
    /// ctime to the nanosecond) was hashed for the manifest, else computed now, the way the manifest's hash pass reads a
    /// file (a large one on two cores: a manifest that took its hash from the hash cache read nothing). Its block digests
    /// are kept for the delta that follows (see <see cref="Receive"/>).</summary>
    private byte[] SignatureOf(string logicalPath)
    {
        using var basis = OpenRegularFile(logicalPath, out var version);
        TakeDeltaBasis(logicalPath);
        (Mono.Unix.Native.Stat Version, Signature Signature)? kept = null;
        if (_signatures.Remove(logicalPath, out var cached))
        {
            if (PosixFiles.SameVersion(cached.Version, version))
                kept = cached; // still counted in the cache's size, until taken
            else
                _signatureBytes -= CachedLength(cached.Signature);
        }
        if (kept is null && version.st_size >= SignatureFormat.DeltaMinimumFileSize)
        {
            var hasher = PosixFiles.Hash(basis, version.st_size, collectSignature: true);
            if (hasher.Finish() is not null && hasher.Signature is { } computed) // else it changed while read: see below
            {
                kept = (version, computed);
                _signatureBytes += CachedLength(computed);
            }
        }
        if (kept is { } basisSignature)
        {
            _deltaBases[logicalPath] = basisSignature;
            var bytes = new MemoryStream((int)basisSignature.Signature.SerializedLength(SignatureParameters.SyncStrongLength));
            basisSignature.Signature.WriteTo(bytes, SignatureParameters.SyncStrongLength);
            return bytes.ToArray();
        }
        basis.Position = 0;
        var signature = new MemoryStream();
        SignatureGenerator.Generate(basis, signature, SignatureParameters.ForSync(basis.Length));
        return signature.ToArray();
    }

    /// <summary>The basis signature kept for the delta to <paramref name="logicalPath"/>, if any, taken out of the cache.</summary>
    private (Mono.Unix.Native.Stat Version, Signature Signature)? TakeDeltaBasis(string logicalPath)
    {
        if (!_deltaBases.Remove(logicalPath, out var kept))
            return null;
        _signatureBytes -= CachedLength(kept.Signature);
        return kept;
    }

    /// <summary>Free bytes and inodes, for this agent, on the file system where <paramref name="logicalPath"/> is or would be
    /// made (that of its nearest existing directory, found below the root's descriptor); laid out as SpaceRequest says.</summary>
    private byte[] SpaceAt(string logicalPath)
    {
        guard.Locate(logicalPath); // refused here: the walk up below stops quietly at the first path outside the allowed set
        using var directory = NearestDirectory(logicalPath);
        if (Mono.Unix.Native.Syscall.fstatvfs(directory.Descriptor, out var vfs) != 0)
            throw PosixFiles.Failure(directory.FullPath, "fstatvfs", Mono.Unix.Native.Stdlib.GetLastError());
        bool root = Mono.Unix.Native.Syscall.geteuid() == 0; // root may use the blocks and inodes reserved for it
        var answer = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(answer, (root ? vfs.f_bfree : vfs.f_bavail) * vfs.f_frsize);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(answer.AsSpan(8), vfs.f_files == 0 ? ulong.MaxValue : root ? vfs.f_ffree : vfs.f_favail);
        return answer;
    }

    /// <summary>The deepest existing directory on the way to <paramref name="logicalPath"/> within the allowed set; the root
    /// when none is.</summary>
    private TreeDirectory NearestDirectory(string logicalPath)
    {
        for (string path = logicalPath; !PathGuard.IsRoot(path); path = TreeWalker.Parent(path))
        {
            try
            {
                if (guard.OpenParent(path, create: false) is { } directory)
                    return directory;
            }
            catch (ConfinementException)
            {
                break; // above the allowed paths
            }
        }
        return guard.OpenRoot();
    }

    private byte[] ReadPrefix(string logicalPath, long max)
    {
        using var file = OpenRegularFile(logicalPath, out _);
        var buffer = new byte[(int)Math.Clamp(Math.Min(max, file.Length), 0, 64 << 20)];
        return buffer[..file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false)];
    }

    /// <summary>The passive's file at <paramref name="logicalPath"/>, opened below the root's descriptor; its fstat in <paramref name="version"/>.</summary>
    private FileStream OpenRegularFile(string logicalPath, out Mono.Unix.Native.Stat version)
    {
        using var directory = guard.OpenParent(logicalPath, create: false)
            ?? throw new IOException($"{guard.Locate(logicalPath)}: not a regular file on the passive");
        return OpenRegularFile(directory, TreeWalker.NameOf(logicalPath), out version);
    }

    /// <summary>The regular file <paramref name="name"/> of <paramref name="directory"/> (O_NOFOLLOW, and checked by fstat on
    /// the descriptor itself: what is read is what was checked).</summary>
    private static FileStream OpenRegularFile(TreeDirectory directory, string name, out Mono.Unix.Native.Stat version)
    {
        var handle = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK); // its error names the file and the cause (a link: ELOOP)
        if (Mono.Unix.Native.Syscall.fstat((int)handle.DangerousGetHandle(), out version) != 0 || PosixFiles.KindOf(version) != EntryKind.File)
        {
            handle.Dispose();
            throw new IOException($"{directory.PathOf(name)}: not a regular file on the passive");
        }
        return new FileStream(handle, FileAccess.Read, 1 << 16);
    }

    private static FileStream OpenRegularFile(TreeDirectory directory, string name) => OpenRegularFile(directory, name, out _);
}
