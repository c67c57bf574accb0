using HaSync.Delta;
using HaSync.Guard;
using HaSync.Interop;
using HaSync.Protocol;
using HaSync.Scanning;
using Microsoft.Win32.SafeHandles;

namespace HaSync.Apply;

/// <summary>
/// The receiving side, <c>hasync serve</c>: reads requests from stdin, answers on stdout, logs to stderr.
/// </summary>
/// <remarks>
/// Implementation notes.
/// One thread reads stdin and applies requests one at a time, in order. A request that fails (confinement, a full disk, a corrupt delta) gets a
/// Failed ack and the session goes on; only a broken frame ends it, because after one the stream cannot be
/// trusted to be in step.
/// Group commit: every write goes through <see cref="PathGuard"/> and lands by rename, so a reader of the
/// passive sees the old complete file until the new one is complete, owned and on disk. Making each file
/// durable on its own costs two fsyncs per file, which is most of a cold copy of /etc and far worse on
/// spinning disks. So changes are applied as they come, files wait as complete temp files, and at the sender's
/// Flush (the end of its burst; the session sends one itself a few milliseconds after a change nobody flushed),
/// before a read, or when a batch grows large, one syncfs per file system makes the batch durable, the temp files are renamed into place, a second syncfs makes the renames
/// durable, and only then are the batch's acks sent: an ack still means "on disk".
/// Split-brain guard: nothing is written before the sender has claimed an epoch this node accepts (and none after
/// a later one was accepted), and nothing the passive changed on its own is overwritten or deleted: the journal in
/// the state directory says what HaSync last wrote; a file that no longer matches is a conflict, kept as it is,
/// with the incoming version put under <c>conflicts/</c> in the state directory.
/// </remarks>
/// <exception cref="IOException">The state directory cannot be read or written (thrown by the constructor).</exception>
public sealed class Agent(PathGuard guard, string stateDirectory, TextWriter log) : IDisposable
{
    private readonly EpochStore _epochs = new(stateDirectory);
    private readonly Journal _journal = new(stateDirectory);
    private readonly HashSet<string> _conflictCopies = ConflictCopies(stateDirectory); // logical paths with an incoming copy kept
    private Epoch? _claim;  // the sender's term, once accepted
    private bool _adopt;    // resync --force: the passive's own changes are overwritten

    private const int MaxBatchFiles = 512;
    private const long MaxBatchBytes = 64L << 20;

    private readonly List<(uint Id, FileEntry Entry, TreeFile File)> _sealed = []; // complete, owned temp files awaiting rename
    private readonly List<(uint Id, AckStatus Status, string Message)> _deferredAcks = [];
    private readonly BatchFileSystems _fileSystems = new(); // what the commit syncs
    private long _batchBytes;
    private readonly Dictionary<string, (Mono.Unix.Native.Stat Version, byte[] Bytes)> _signatures = new(StringComparer.Ordinal);
    private long _signatureBytes;                    // cached signatures, from the manifest's hash pass
    private const long MaxCachedSignatureBytes = 64L << 20;
    private readonly EntryCodec _requests = new();  // decodes entries in the sender's order
    private readonly EntryCodec _manifests = new(); // encodes entries in our answers' order

    /// <summary>Serves one session on the calling thread; returns the process exit code (0 = the sender said goodbye or closed).</summary>
    public int Serve(Stream input, Stream output, CancellationToken cancellationToken = default)
    {
        var reader = new FrameReader(input);
        var writer = new FrameWriter(output);
        ProtocolException? readError = null;
        Epoch? known;
        try
        {
            known = _epochs.Known();
        }
        catch (HaSyncException e)
        {
            log.WriteLine($"hasync serve: {e.Message}");
            return 2;
        }
        try
        {
            var hello = reader.Read() ?? throw new ProtocolException("reading hello: connection closed before the first frame");
            CheckHello(hello);
            var welcome = new PayloadWriter().U32(Wire.Magic).U16(Wire.Version).Text(guard.Root).U32((uint)guard.Allowed.Count);
            foreach (string allowed in guard.Allowed)
                welcome.Text(allowed);
            if (known is null)
                welcome.U8(0);
            else
                EpochWire.Write(welcome.U8(1), known);
            writer.Write(FrameType.Welcome, welcome);
            writer.Flush();
        }
        catch (ProtocolException e)
        {
            log.WriteLine($"hasync serve: protocol error, closing the session: {e.Message}");
            return 2;
        }

        try
        {
            while (reader.Read() is { } frame)
            {
                if (frame.Type == FrameType.Goodbye)
                    break;
                cancellationToken.ThrowIfCancellationRequested();
                Handle(frame, reader.Read, writer);
                if (_sealed.Count >= MaxBatchFiles || _batchBytes >= MaxBatchBytes)
                    Commit(writer);
            }
            Commit(writer);
            FlushAnswers(writer);
        }
        catch (ProtocolException e)
        {
            readError = e;
        }
        finally
        {
            foreach (var (_, _, file) in _sealed)
                file.Dispose(); // only reached with a batch left by an error: its temp files go
        }
        if (readError is not null)
        {
            log.WriteLine($"hasync serve: protocol error, closing the session: {readError.Message}");
            return 2;
        }
        return 0;
    }

    /// <summary>Closes the journal.</summary>
    public void Dispose()
    {
        _journal.Dispose();
        _fileSystems.Dispose();
    }

    private static HashSet<string> ConflictCopies(string stateDirectory)
    {
        string copies = Path.Combine(stateDirectory, "conflicts");
        return Directory.Exists(copies)
            ? Directory.EnumerateFiles(copies, "*", SearchOption.AllDirectories).Select(copy => "/" + Path.GetRelativePath(copies, copy)).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
    }

    private static void CheckHello(Frame hello)
    {
        if (hello.Type != FrameType.Hello)
            throw new ProtocolException($"reading hello: got a {hello.Type} frame first");
        var payload = hello.Reader();
        uint magic = payload.U32("magic");
        ushort version = payload.U16("version");
        if (magic != Wire.Magic)
            throw new ProtocolException($"reading hello: bad magic 0x{magic:x8} (is the other side hasync?)");
        if (version != Wire.Version)
            throw new ProtocolException($"reading hello: protocol version {version}, this agent speaks {Wire.Version}: install the same hasync on both nodes");
        payload.End();
    }

    private void Handle(Frame frame, Func<Frame?> next, FrameWriter writer)
    {
        var payload = frame.Reader();
        uint id = payload.U32("id");
        string subject = "";
        try
        {
            switch (frame.Type)
            {
                case FrameType.ManifestRequest:
                    uint count = payload.U32("count");
                    var paths = new List<string>();
                    for (uint i = 0; i < count; i++)
                        paths.Add(payload.Text("path"));
                    payload.End();
                    Commit(writer); // reads see every change acknowledged before them
                    SendManifest(id, paths, writer);
                    FlushAnswers(writer);
                    return;
                case FrameType.SignatureRequest:
                    subject = payload.Text("path");
                    payload.End();
                    Commit(writer);
                    SendData(id, SignatureOf(subject), writer);
                    FlushAnswers(writer);
                    return;
                case FrameType.ReadRequest:
                    subject = payload.Text("path");
                    long max = payload.I64("max");
                    payload.End();
                    Commit(writer);
                    SendData(id, ReadPrefix(subject, max), writer);
                    FlushAnswers(writer);
                    return;
                case FrameType.Flush:
                    payload.End();
                    Commit(writer);
                    Ack(writer, id, AckStatus.Ok, "");
                    FlushAnswers(writer);
                    return;
                case FrameType.Claim:
                    var claim = EpochWire.Read(ref payload);
                    bool adopt = payload.U8("adopt") == 1;
                    payload.End();
                    Commit(writer);
                    _epochs.Accept(claim);
                    (_claim, _adopt) = (claim, adopt);
                    if (adopt)
                        log.WriteLine($"hasync serve: {claim} overwrites what was changed on this node (resync --force, or resolve --take active)");
                    Ack(writer, id, AckStatus.Ok, "");
                    FlushAnswers(writer);
                    return;
                case FrameType.PutFile:
                    var entry = _requests.Read(ref payload);
                    var encoding = (PutEncoding)payload.U8("encoding");
                    payload.End();
                    subject = entry.Path;
                    CommitIfPending(entry.Path, writer);
                    if (Fenced(id, next, put: true))
                        return;
                    Put(id, entry, encoding, next);
                    return;
                case FrameType.MakeDirectory:
                case FrameType.MakeSymlink:
                case FrameType.SetMetadata:
                    var target = _requests.Read(ref payload);
                    payload.End();
                    subject = target.Path;
                    CommitIfPending(target.Path, writer);
                    if (Fenced(id, next, put: false))
                        return;
                    DeferAndClose(id, frame.Type switch
                    {
                        FrameType.MakeDirectory => MakeDirectory(target),
                        FrameType.MakeSymlink => MakeSymlink(target),
                        _ => SetMetadata(target),
                    });
                    return;
                case FrameType.Delete:
                    subject = payload.Text("path");
                    payload.End();
                    CommitIfPending(subject, writer);
                    if (Fenced(id, next, put: false))
                        return;
                    DeferAndClose(id, Delete(subject));
                    return;
                default:
                    throw new ProtocolException($"reading request {id}: a {frame.Type} frame is not a request");
            }
        }
        catch (ConflictException e)
        {
            // Not logged here: the sender reports it (the daemon once, not at every retry).
            _deferredAcks.Add((id, AckStatus.Conflict, e.Message)); // in order with the batch's other answers
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException or FencedException)
        {
            log.WriteLine($"hasync serve: {frame.Type}{(subject.Length > 0 ? " " + subject : "")}: {e.Message}");
            Ack(writer, id, AckStatus.Failed, e.Message);
            FlushAnswers(writer); // the sender may be waiting for this very answer (a read, a claim)
        }
    }

    /// <summary>True (and the request answered Fenced, a put's data drained) when the session has no accepted epoch, or
    /// another node's later epoch has been accepted since ours. A put is checked again when its batch is committed,
    /// before anything of it is published, so here only its claim is (one lstat less per file of a burst).</summary>
    private bool Fenced(uint id, Func<Frame?> next, bool put)
    {
        string? why = null;
        if (_claim is null)
            why = "no epoch claimed: the sender must claim its term as the active node before writing (is it an older hasync?)";
        else if (!put)
        {
            try
            {
                _epochs.EnsureStillCurrent(_claim);
            }
            catch (FencedException e)
            {
                why = e.Message;
            }
        }
        if (why is null)
            return false;
        if (put)
            new DataFrameReadStream(next, id).Drain();
        log.WriteLine($"hasync serve: {why}");
        _deferredAcks.Add((id, AckStatus.Fenced, why));
        return true;
    }

    /// <summary>Null when the entry <paramref name="logicalPath"/> of <paramref name="directory"/> (whose lstat the caller has:
    /// <paramref name="st"/>, null when absent) may be overwritten or deleted: absent, as HaSync last wrote it, already
    /// holding <paramref name="incoming"/>'s content, or the sender adopts (--force). Otherwise what the passive's own
    /// change is, in words.</summary>
    private string? LocalChangeAt(TreeDirectory directory, string logicalPath, Mono.Unix.Native.Stat? st, FileEntry? incoming)
    {
        string name = TreeWalker.NameOf(logicalPath), fullPath = directory.PathOf(name);
        if (st is null || AtomicFile.IsTempName(name))
            return null; // nothing there, or a temp file left by a killed agent: HaSync's own
        var change = _journal.Check(logicalPath, st.Value, () => directory.Describe(name, logicalPath), out var current);
        if (change == LocalChange.None)
            return null;
        if (incoming is not null && current is not null && _journal.FingerprintOf(current) == _journal.FingerprintOf(incoming))
            return null; // the same content arrived by another way: nothing of the passive's own is lost
        if (_adopt)
        {
            log.WriteLine($"hasync serve: {fullPath}: overwriting a {(change == LocalChange.Edited ? "local change" : "file HaSync never wrote")}, as the sender asked");
            return null;
        }
        return change == LocalChange.Edited
            ? $"{fullPath}: changed on this node since HaSync last wrote it"
            : $"{fullPath}: differs from the active's and was never written by HaSync (first contact; seed with 'hasync resync --force')";
    }

    /// <summary>HaSync wrote <paramref name="entry"/> in <paramref name="directory"/>: the journal says so (with the version
    /// now there), and a conflict that stood there is settled.</summary>
    private void Record(FileEntry entry, TreeDirectory directory)
    {
        _journal.Wrote(entry, directory.Entry(TreeWalker.NameOf(entry.Path)));
        Settled(entry.Path);
    }

    /// <summary>The incoming copy of a conflict that is settled goes.</summary>
    private void Settled(string logicalPath)
    {
        if (!_conflictCopies.Remove(logicalPath))
            return;
        try
        {
            File.Delete(ConflictCopyPath(logicalPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.WriteLine($"hasync serve: {ConflictCopyPath(logicalPath)}: cannot remove the settled conflict's copy: {e.Message}");
        }
    }

    /// <summary>Where the incoming version of a conflicting path is kept.</summary>
    private string ConflictCopyPath(string logicalPath) => TreeWalker.FullPath(Path.Combine(stateDirectory, "conflicts"), logicalPath);

    private static void Ack(FrameWriter writer, uint id, AckStatus status, string message) => WriteAcks(writer, [(id, status, message)]);

    private static void FlushAnswers(FrameWriter writer) => writer.Flush();

    /// <summary>One frame for many answers: ids as differences, messages only for failures (a message is at most
    /// <see cref="MaxAckMessage"/> characters: it names a path and where a conflict's copy went).</summary>
    private static void WriteAcks(FrameWriter writer, List<(uint Id, AckStatus Status, string Message)> acks)
    {
        const int budget = Wire.MaxFrameLength / 2; // bytes per frame, far from the limit even when the last answer is the longest
        int start = 0;
        while (start < acks.Count)
        {
            int end = start, bytes = 0;
            for (; end < acks.Count && bytes < budget; end++)
                bytes += 16 + (acks[end].Status == AckStatus.Ok ? 0 : 3 * Math.Min(acks[end].Message.Length, MaxAckMessage)); // UTF-8: at most 3 bytes a char
            var payload = new PayloadWriter();
            payload.VarU((ulong)(end - start));
            long previous = 0;
            foreach (var (id, status, message) in acks.Skip(start).Take(end - start))
            {
                payload.VarS(id - previous).U8((byte)status);
                if (status != AckStatus.Ok)
                    payload.Text(message.Length > MaxAckMessage ? message[..MaxAckMessage] : message);
                previous = id;
            }
            writer.Write(FrameType.Acks, payload);
            start = end;
        }
    }

    private const int MaxAckMessage = 2000;

    /// <summary>The change is applied; its ack waits for the commit that makes it durable.</summary>
    private void Defer(uint id, TreeDirectory directory)
    {
        _fileSystems.Touch(directory);
        _deferredAcks.Add((id, AckStatus.Ok, ""));
    }

    /// <summary><see cref="Defer(uint, TreeDirectory)"/> for a change made in a directory the caller is done with.</summary>
    private void DeferAndClose(uint id, TreeDirectory directory)
    {
        using (directory)
            Defer(id, directory);
    }

    /// <summary>A request about a path whose new content still waits in the batch sees it in place first.</summary>
    private void CommitIfPending(string logicalPath, FrameWriter writer)
    {
        if (_sealed.Any(s => s.Entry.Path == logicalPath || s.Entry.Path.StartsWith(logicalPath + "/", StringComparison.Ordinal)))
            Commit(writer);
    }

    /// <summary>Makes the batch durable and visible, then sends its acks (see the implementation notes). Each change gets
    /// its own outcome: a file system that cannot be flushed fails what was written there, never what was made
    /// elsewhere, and a change already in place is never reported as not made (the sender would believe the passive
    /// still holds the old version).</summary>
    private void Commit(FrameWriter writer)
    {
        if (_deferredAcks.Count == 0)
            return;
        var acks = new List<(uint Id, AckStatus Status, string Message)>(_deferredAcks);
        var puts = _sealed.Select(s => s.Id).ToHashSet();
        void Fail(Func<uint, bool> which, AckStatus status, Func<uint, string> message)
        {
            for (int i = 0; i < acks.Count; i++)
                if (acks[i].Status == AckStatus.Ok && which(acks[i].Id))
                    acks[i] = (acks[i].Id, status, message(acks[i].Id));
        }
        try
        {
            foreach (var (_, entry, _) in _sealed)
                _journal.Intend(entry);
            _journal.Flush();
            _fileSystems.Touch(stateDirectory);
            try
            {
                _fileSystems.SyncAll(); // the temp files and the intents are on disk before any rename
            }
            catch (IOException e)
            {
                // Nothing of the batch's files is published (a rename made durable before the data would leave an empty
                // file after a crash); the changes made in place (directories, links, deletes, metadata) stand.
                log.WriteLine($"hasync serve: commit of {acks.Count} changes: {e.Message}");
                Fail(puts.Contains, AckStatus.Failed, _ => $"not written: the passive's file system could not be flushed ({e.Message})");
                Fail(_ => true, AckStatus.Failed, _ => $"made, but the passive's file system could not confirm it is on disk ({e.Message})");
                return;
            }
            if (_sealed.Count > 0 && _claim is not null)
                _epochs.EnsureStillCurrent(_claim); // a later active claimed this node while the batch came in: publish none of it
            foreach (var (id, entry, file) in _sealed)
            {
                try
                {
                    file.Publish();
                    Record(entry, file.Directory);
                }
                catch (IOException e)
                {
                    Fail(a => a == id, AckStatus.Failed, _ => e.Message);
                    log.WriteLine($"hasync serve: PutFile {entry.Path}: {e.Message}");
                }
            }
            _journal.Flush();
            try
            {
                _fileSystems.SyncAll();
            }
            catch (IOException e)
            {
                log.WriteLine($"hasync serve: commit of {acks.Count} changes: {e.Message}");
                Fail(_ => true, AckStatus.Failed, _ => $"made, but the passive's file system could not confirm it is on disk ({e.Message})");
            }
        }
        catch (FencedException e)
        {
            log.WriteLine($"hasync serve: {e.Message}");
            Fail(puts.Contains, AckStatus.Fenced, _ => e.Message);
        }
        catch (IOException e)
        {
            // The journal could not be written: the sender learns what stands on the passive before it tries again.
            log.WriteLine($"hasync serve: commit of {acks.Count} changes failed: {e.Message}");
            Fail(_ => true, AckStatus.Failed, _ => $"not recorded in the passive's journal, may or may not be in place: {e.Message}");
        }
        finally
        {
            foreach (var (_, _, file) in _sealed)
                file.Dispose();
            _sealed.Clear();
            _deferredAcks.Clear();
            _fileSystems.Clear();
            _batchBytes = 0;
            WriteAcks(writer, acks);
        }
    }

    private void SendManifest(uint id, List<string> paths, FrameWriter writer)
    {
        foreach (string path in paths)
            guard.Locate(path); // refuses paths outside the allowed set before listing anything
        PayloadWriter? batch = null;
        foreach (var entry in WalkBelowRoot(paths))
        {
            if (batch is null || batch.Length > 60_000)
            {
                if (batch is not null)
                    writer.Write(FrameType.ManifestEntries, batch);
                batch = new PayloadWriter().U32(id);
            }
            _manifests.Write(batch, entry);
            batch.U8((byte)(AtomicFile.IsTempName(Path.GetFileName(entry.Path)) ? LocalChange.None : _journal.Check(entry)));
        }
        if (batch is not null)
            writer.Write(FrameType.ManifestEntries, batch);
        writer.Write(FrameType.ManifestEnd, new PayloadWriter().U32(id));
    }

    /// <summary>The entries at and below <paramref name="paths"/>, in path order, each read through its directory's
    /// descriptor from the root down (no link followed, whatever is swapped in meanwhile); a path behind a file or a
    /// link has nothing to list.</summary>
    private List<FileEntry> WalkBelowRoot(IEnumerable<string> paths)
    {
        var entries = new List<FileEntry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Visit(TreeDirectory directory, string name, string logical)
        {
            if (!seen.Add(logical))
                return;
            FileEntry? entry;
            try
            {
                entry = directory.Describe(name, logical, Remember);
            }
            catch (FileChangedException e)
            {
                // Left out: the sender then sends it, and the write checks what stands there at that moment.
                log.WriteLine($"hasync serve: manifest: {e.Message}; left out of this answer");
                return;
            }
            if (entry is null)
                return;
            entries.Add(entry);
            if (entry.Kind != EntryKind.Directory)
                return;
            using var below = name == "." ? guard.OpenRoot() : directory.OpenDirectory(name);
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
        entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return entries;
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
        long length = signature.SerializedLength(SignatureParameters.SyncStrongLength);
        if (_signatureBytes + length > MaxCachedSignatureBytes)
            return;
        var bytes = new MemoryStream((int)length);
        signature.WriteTo(bytes, SignatureParameters.SyncStrongLength);
        _signatures[entry.Path] = (version, bytes.ToArray());
        _signatureBytes += bytes.Length;
    }

    /// <summary>The signature of the passive's copy: from the cache when that exact version (inode, size, mtime and
    /// ctime to the nanosecond) was hashed for the manifest, else computed now.</summary>
    private byte[] SignatureOf(string logicalPath)
    {
        using var basis = OpenRegularFile(logicalPath, out var version);
        if (_signatures.Remove(logicalPath, out var cached))
        {
            _signatureBytes -= cached.Bytes.Length;
            if (PosixFiles.SameVersion(cached.Version, version))
                return cached.Bytes;
        }
        var signature = new MemoryStream();
        SignatureGenerator.Generate(basis, signature, SignatureParameters.ForSync(basis.Length));
        return signature.ToArray();
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
        string full = directory.PathOf(name);
        SafeFileHandle handle;
        try
        {
            handle = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK);
        }
        catch (IOException)
        {
            throw new IOException($"{full}: not a regular file on the passive");
        }
        if (Mono.Unix.Native.Syscall.fstat((int)handle.DangerousGetHandle(), out version) != 0 || PosixFiles.KindOf(version) != EntryKind.File)
        {
            handle.Dispose();
            throw new IOException($"{full}: not a regular file on the passive");
        }
        return new FileStream(handle, FileAccess.Read, 1 << 16);
    }

    private static FileStream OpenRegularFile(TreeDirectory directory, string name) => OpenRegularFile(directory, name, out _);

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
                throw new IOException($"{entry.Path}: a PutFile must describe a regular file with its hash");
            string full = guard.Locate(entry.Path), name = TreeWalker.NameOf(entry.Path);
            directory = guard.OpenParent(entry.Path, create: true)!;
            var existing = directory.Entry(name);
            if (existing is { } e && PosixFiles.KindOf(e) == EntryKind.Directory)
                throw new IOException($"{full}: is a directory on the passive");
            if (LocalChangeAt(directory, entry.Path, existing, entry) is { } conflict)
            {
                KeepIncoming(entry, encoding, data, directory, conflict);
                return;
            }
            file = TreeFile.Create(directory, name);
            directory = null; // the file holds it now, until its rename
            var hashing = new HashingWriteStream(file.Stream, entry.Size);
            Receive(encoding, data, hashing, file.Directory, name, entry.Size);
            data.Drain();
            if (hashing.Finish() is not { } received || !received.AsSpan().SequenceEqual(entry.Hash))
            {
                // A delta that did not rebuild the file, or a file that changed on the active while it was sent.
                string what = $"{full}: received {hashing.Written} bytes whose hash differs from the active's ({entry.Size} bytes, {entry.HashHex})";
                log.WriteLine($"hasync serve: {what}");
                file.Dispose();
                _deferredAcks.Add((id, AckStatus.HashMismatch, what));
                return;
            }
            file.Seal(entry);
            _sealed.Add((id, entry, file));
            _batchBytes += entry.Size;
            Defer(id, file.Directory);
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            string message = file?.InTermsOfTarget(e.Message) ?? e.Message;
            file?.Dispose();
            data.Drain();
            log.WriteLine($"hasync serve: PutFile {entry.Path}: {message}");
            _deferredAcks.Add((id, AckStatus.Failed, message)); // in order with the batch's other answers
        }
        finally
        {
            directory?.Dispose();
        }
    }

    /// <summary>A PutFile's data into <paramref name="into"/>: as is, or a delta applied to the passive's copy,
    /// <paramref name="name"/> in <paramref name="directory"/>.</summary>
    private static void Receive(PutEncoding encoding, Stream data, Stream into, TreeDirectory directory, string name, long size)
    {
        if (encoding == PutEncoding.Delta)
        {
            using var basis = OpenRegularFile(directory, name);
            DeltaPatcher.Apply(basis, data, into, maxOutputLength: size);
        }
        else
        {
            CopyAtMost(data, into, size, directory.PathOf(name));
        }
    }

    /// <summary>A conflict: the passive's file stays as it is; the incoming version is kept under the state directory
    /// (private: it may be secret), for the admin to compare. Always throws the <see cref="ConflictException"/>.</summary>
    private void KeepIncoming(FileEntry entry, PutEncoding encoding, DataFrameReadStream data, TreeDirectory directory, string conflict)
    {
        string copy = ConflictCopyPath(entry.Path);
        string kept;
        try
        {
            StateDirectory.EnsurePrivate(Path.GetDirectoryName(copy)!);
            using var file = AtomicFile.Create(copy, privateUntilCommit: true);
            var hashing = new HashingWriteStream(file.Stream, entry.Size);
            Receive(encoding, data, hashing, directory, TreeWalker.NameOf(entry.Path), entry.Size);
            data.Drain();
            if (hashing.Finish() is { } received && received.AsSpan().SequenceEqual(entry.Hash))
            {
                file.Commit();
                _conflictCopies.Add(entry.Path);
                kept = $"the active's version is at {copy}";
            }
            else
            {
                kept = "the active's version did not arrive whole and is not kept";
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DeltaFormatException)
        {
            data.Drain();
            kept = $"the active's version could not be kept: {e.Message}";
        }
        throw new ConflictException($"{conflict}; left as it is; {kept}");
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

    private TreeDirectory MakeDirectory(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
        {
            var root = guard.OpenRoot(); // its metadata only: it exists
            using (var self = root.Open(".", LibcAt.O_RDONLY | LibcAt.O_DIRECTORY))
                PosixFiles.ApplyMetadata(self, root.FullPath, entry);
            return root;
        }
        string name = TreeWalker.NameOf(entry.Path);
        var directory = guard.OpenParent(entry.Path, create: true)!;
        try
        {
            if (directory.Entry(name) is { } st)
            {
                if (PosixFiles.KindOf(st) != EntryKind.Directory)
                    throw new IOException($"{directory.PathOf(name)}: exists on the passive and is not a directory");
            }
            else
            {
                directory.MakeDirectory(name, 0x1c0); // 0700 until its metadata is set
            }
            using (var made = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_DIRECTORY))
                PosixFiles.ApplyMetadata(made, directory.PathOf(name), entry);
            return directory;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    private TreeDirectory MakeSymlink(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
            throw new ConfinementException("refusing to replace the root with a symlink");
        string full = guard.Locate(entry.Path), name = TreeWalker.NameOf(entry.Path);
        string target = entry.LinkTarget ?? throw new IOException($"{entry.Path}: symlink without a target");
        var directory = guard.OpenParent(entry.Path, create: true)!;
        try
        {
            var st = directory.Entry(name);
            if (st is { } e && PosixFiles.KindOf(e) == EntryKind.Directory)
                throw new IOException($"{full}: is a directory on the passive");
            if (LocalChangeAt(directory, entry.Path, st, entry) is { } conflict)
                throw new ConflictException($"{conflict}; left as it is (the active has a symlink to {target})");
            // Made beside it, owned and timed on the link itself, renamed over whatever stood there.
            string temp = AtomicFile.TempNameFor(name);
            directory.Symlink(target, temp);
            try
            {
                directory.SetLinkMetadata(temp, PosixFiles.ResolveUser(entry.Owner, entry.Uid), PosixFiles.ResolveGroup(entry.Group, entry.Gid),
                    entry.MtimeSeconds, entry.MtimeNanoseconds);
                directory.Rename(temp, name);
            }
            catch
            {
                directory.Remove(temp, directory: false);
                throw;
            }
            Record(entry, directory);
            return directory;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    private TreeDirectory SetMetadata(FileEntry entry)
    {
        if (PathGuard.IsRoot(entry.Path))
            return MakeDirectory(entry);
        string full = guard.Locate(entry.Path), name = TreeWalker.NameOf(entry.Path);
        var directory = guard.OpenParent(entry.Path, create: false) ?? throw new IOException($"{full}: does not exist on the passive");
        try
        {
            if (directory.Entry(name) is not { } st)
                throw new IOException($"{full}: does not exist on the passive");
            if (PosixFiles.KindOf(st) != entry.Kind)
                throw new IOException($"{full}: is a {PosixFiles.KindOf(st)} on the passive, not a {entry.Kind}");
            if (LocalChangeAt(directory, entry.Path, st, entry) is { } conflict)
                throw new ConflictException($"{conflict}; left as it is");
            if (entry.Kind == EntryKind.Symlink)
                directory.SetLinkMetadata(name, PosixFiles.ResolveUser(entry.Owner, entry.Uid), PosixFiles.ResolveGroup(entry.Group, entry.Gid),
                    entry.MtimeSeconds, entry.MtimeNanoseconds);
            else
            {
                // O_NONBLOCK: opening never waits (a FIFO swapped in); the descriptor must still be the entry looked at.
                using var self = directory.Open(name, LibcAt.O_RDONLY | LibcAt.O_NONBLOCK);
                if (Mono.Unix.Native.Syscall.fstat((int)self.DangerousGetHandle(), out var opened) != 0 || opened.st_ino != st.st_ino || opened.st_dev != st.st_dev)
                    throw new IOException($"{full}: replaced while its metadata was being set; left for the next try");
                PosixFiles.ApplyMetadata(self, full, entry);
            }
            Record(entry, directory); // also adopts a file found identical on first contact
            return directory;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    private TreeDirectory Delete(string logicalPath)
    {
        if (PathGuard.IsRoot(logicalPath))
            throw new ConfinementException("refusing to delete the root");
        string full = guard.Locate(logicalPath), name = TreeWalker.NameOf(logicalPath);
        // No directory there (a file or a link replaced a parent): no entry of the tree stands at the path, the delete is done.
        var directory = guard.OpenParent(logicalPath, create: false);
        if (directory is null)
            return guard.OpenRoot();
        try
        {
            if (directory.Entry(name) is not { } st)
                return directory; // already gone: deleting is idempotent
            if (PosixFiles.KindOf(st) == EntryKind.Directory)
                directory.Remove(name, directory: true);
            else
            {
                if (LocalChangeAt(directory, logicalPath, st, incoming: null) is { } conflict)
                    throw new ConflictException($"{conflict}; not deleted, though it is gone on the active");
                directory.Remove(name, directory: false);
                _journal.Removed(logicalPath);
                Settled(logicalPath);
            }
            return directory;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }
}

/// <summary>A write refused because the passive changed the path on its own; the message says what and where the incoming version went.</summary>
internal sealed class ConflictException(string message) : HaSyncException(message);
