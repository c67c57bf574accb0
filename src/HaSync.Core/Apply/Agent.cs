using HaSync.Delta;
using HaSync.Guard;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Apply;

/// <summary>
/// The receiving side, <c>hasync serve</c>: reads requests from stdin, answers on stdout, logs to stderr.
/// </summary>
/// <remarks>
/// Implementation notes.
/// One thread reads stdin and applies requests one at a time, in order. A request that fails (confinement, a full disk, a corrupt delta) gets a
/// Failed ack and the session goes on; only a broken frame ends it, because after one the stream cannot be
/// trusted to be in step.
/// Group commit: every write goes through <see cref="PathGuard"/> and lands by link or rename (<see cref="TreeFile"/>), so a reader of the
/// passive sees the old complete file until the new one is complete, owned and on disk. Making each file
/// durable on its own costs two fsyncs per file, which is most of a cold copy of /etc and far worse on
/// spinning disks. So changes are applied as they come, files wait as complete temp files, and at the sender's
/// Flush (the end of its burst; the session sends one itself a few milliseconds after a change nobody flushed),
/// before a read, or when a batch grows large, the batch is made durable: the journal's intents and each temp file
/// (fsync; its writeback was started when it was sealed) before any is put in place, then the links, renames and in-place changes
/// (an fsync of each directory and inode changed, see <see cref="BatchSync"/>), and only then are the batch's acks
/// sent: an ack still means "on disk". A small batch flushes only its own inodes (a syncfs would wait for every other
/// writer's data on the file system); a large one, one syncfs per file system at each of the two steps.
/// Split-brain guard: nothing is written before the sender has claimed an epoch this node accepts (and none after
/// a later one was accepted), and nothing the passive changed on its own is overwritten or deleted: the journal in
/// the state directory says what HaSync last wrote; a file that no longer matches is a conflict, kept as it is,
/// with the incoming version put under <c>conflicts/</c> in the state directory.
/// Confinement: every request's path is checked by the <see cref="PathGuard"/> and its directory resolved below a descriptor
/// on the root (or taken from the ones the batch already resolved); the request then works on descriptors only (see <see cref="TreeDirectory"/>), whatever a local user swaps in.
/// The parts: this file (the session loop and dispatch), Agent.Writes.cs (files, directories, links, metadata,
/// deletes), Agent.Commit.cs (the group commit and its answers), Agent.Reads.cs (manifests, signatures, content),
/// Agent.Guard.cs (fencing, local changes, conflict copies).
/// </remarks>
/// <param name="guard">Where the agent may write.</param>
/// <param name="stateDirectory">Journal, epochs, conflict copies and the hash cache.</param>
/// <param name="log">stderr.</param>
/// <param name="keepSetId">Apply set-user-id and set-group-id bits as sent (<c>serve --allow-setid</c>). By default they
/// are stripped from every file and directory written, as rsync does without <c>--perms</c>: whoever controls the active's
/// tree (or its owner of one directory) must not be able to plant a root-owned set-id program on the passive.</param>
/// <exception cref="IOException">The state directory cannot be read or written (thrown by the constructor; a journal that
/// cannot be read ends the session instead, with exit 2, see <see cref="Serve"/>).</exception>
public sealed partial class Agent(PathGuard guard, string stateDirectory, TextWriter log, bool keepSetId = false) : IDisposable
{
    private readonly uint _keptMode = ModeBits.Kept(keepSetId);
    private readonly EpochStore _epochs = new(stateDirectory);
    // Read on another core while the session starts and the first manifest is walked: an agent reads the whole journal, a
    // line per path ever written, at every session.
    private readonly Task<Journal> _journalRead = Task.Run(() => new Journal(stateDirectory));
    private readonly HashSet<string> _conflictCopies = ConflictCopies(stateDirectory); // logical paths with an incoming copy kept
    private Epoch? _claim;  // the sender's term, once accepted
    private bool _adopt;    // resync --force: the passive's own changes are overwritten

    // Each file of a batch holds two descriptors until the commit (its temp file, its directory): within the limit on
    // open files, which the first agent of the process raises to its hard limit. Up to a few thousand, so that a cold copy
    // of /etc is one commit (each costs two syncfs, 20 to 60 ms).
    private static readonly int MaxBatchFiles = (int)Math.Clamp((Interop.Libc.RaiseOpenFileLimit() - 256) / 3, 16, 4096);
    private const int MaxBatchChanges = 8192; // answers held for one commit: a sender that never flushes cannot grow them without bound
    private const long MaxBatchBytes = 64L << 20;

    private readonly List<(uint Id, FileEntry Entry, TreeFile File)> _sealed = []; // complete, owned files awaiting their link or rename
    private readonly HashSet<string> _sealedPaths = new(StringComparer.Ordinal);   // their paths and the directories above them
    private readonly List<(uint Id, AckStatus Status, string Message)> _deferredAcks = [];
    private readonly BatchSync _sync = new();               // what the commit fsyncs
    private readonly BatchDirectories _directories = new(); // what the commit gives back its time
    private long _batchBytes;
    private int _writebackStarted; // of _sealed, see StartWritebackWhileIdle
    private readonly Dictionary<string, (Mono.Unix.Native.Stat Version, Signature Signature)> _signatures = new(StringComparer.Ordinal);
    private long _signatureBytes;                    // cached signatures (full block digests), from the manifest's hash pass
    private readonly Dictionary<string, (Mono.Unix.Native.Stat Version, Signature Signature)> _deltaBases = new(StringComparer.Ordinal);
    private const long MaxCachedSignatureBytes = 64L << 20;
    private readonly EntryCodec _requests = new();  // decodes entries in the sender's order
    private readonly EntryCodec _manifests = new(); // encodes entries in our answers' order
    private readonly string _hashesPath = HashCache.AgentFile(stateDirectory);
    private HashCache? _hashes; // the passive's content hashes by version, read at the first manifest

    /// <summary>Serves one session on the calling thread; returns the process exit code (0 = the sender said goodbye or
    /// closed). The hello says how often the sender's heartbeat comes: the agent sends its own as often while it says
    /// nothing (a long manifest, a slow commit), and gives up on a sender silent for five of them.</summary>
    public int Serve(SilenceLimitedStream input, Stream output, CancellationToken cancellationToken = default)
    {
        // The kernel grows a threaded process's table of descriptors by doubling it, each time waiting for an RCU grace
        // period (10 ms here): a cold copy of /etc waited for four of them, on the thread that applies. Grown to a full
        // batch's size at once, off that thread, while the session starts (opens below the old size do not wait for it).
        _ = Task.Run(() => Interop.Libc.GrowDescriptorTable(2 * MaxBatchFiles + 256), CancellationToken.None);
        var reader = new FrameReader(input);
        var writer = new FrameWriter(output);
        HaSyncException? readError = null;
        Epoch? known;
        TimeSpan heartbeat;
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
            heartbeat = Hello.Check(hello);
            input.Limit = Wire.SilenceLimit(heartbeat);
            writer.Write(FrameType.Welcome, new Welcome(guard.Root, guard.Allowed, keepSetId, known).Write());
            writer.Flush();
        }
        catch (Exception e) when (e is ProtocolException or PeerSilentException)
        {
            log.WriteLine($"hasync serve: {(e is ProtocolException ? "protocol error, " : "")}closing the session: {e.Message}");
            return 2;
        }

        input.Idle = StartWritebackWhileIdle;
        using var heartbeats = new Timer(_ => Heartbeat(writer, heartbeat), null, heartbeat, heartbeat);
        try
        {
            while (reader.Read() is { } frame)
            {
                if (frame.Type == FrameType.Goodbye)
                    break;
                cancellationToken.ThrowIfCancellationRequested();
                Handle(frame, reader.Read, writer);
                if (_sealed.Count >= MaxBatchFiles || _batchBytes >= MaxBatchBytes || _deferredAcks.Count >= MaxBatchChanges)
                    Commit(writer);
            }
            Commit(writer);
            FlushAnswers(writer);
            _ = Journal; // a session that asked for nothing still ends saying that the state directory is unusable
        }
        catch (Exception e) when (e is ProtocolException or PeerSilentException or StateUnusableException)
        {
            readError = (HaSyncException)e;
        }
        finally
        {
            foreach (var (_, _, file) in _sealed)
                file.Dispose(); // only reached with a batch left by an error: its temp files go
        }
        if (readError is not null)
        {
            log.WriteLine($"hasync serve: {(readError is ProtocolException ? "protocol error, " : "")}closing the session: {readError.Message}");
            return 2;
        }
        return 0;
    }

    private static void Heartbeat(FrameWriter writer, TimeSpan quiet)
    {
        try
        {
            writer.HeartbeatIfQuiet(quiet);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // the sender is gone: the main loop finds out on its next read
        }
    }

    /// <summary>The journal, once read; a state directory where it cannot be read ends the session.</summary>
    private Journal Journal
    {
        get
        {
            try
            {
                return _journalRead.GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new StateUnusableException(e.Message, e);
            }
        }
    }

    /// <summary>Closes the journal.</summary>
    public void Dispose()
    {
        ((IAsyncResult)_journalRead).AsyncWaitHandle.WaitOne(); // read or failed: only one read has a lock to give back
        if (_journalRead.IsCompletedSuccessfully)
            _journalRead.Result.Dispose();
        _sync.Dispose();
        _directories.Dispose();
        guard.ForgetOpened();
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
                    SaveHashes();
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
                case FrameType.SpaceRequest:
                    subject = payload.Text("path");
                    payload.End();
                    Commit(writer); // the batch's files count against the space
                    SendData(id, SpaceAt(subject), writer);
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
                    var entry = _requests.Read(ref payload).WithModeKept(_keptMode);
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
                    var target = _requests.Read(ref payload).WithModeKept(_keptMode);
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
                    throw new ProtocolException($"reading request {id}: {Wire.Describe(frame.Type)} is not a request");
            }
        }
        catch (ConflictException e)
        {
            // Not logged here: the sender reports it (the daemon once, not at every retry).
            _deferredAcks.Add((id, AckStatus.Conflict, e.Message)); // in order with the batch's other answers
        }
        catch (Exception e) when (e is ConfinementException or IOException or UnauthorizedAccessException or DeltaFormatException or FencedException)
        {
            string what = subject.Length > 0 ? subject : Wire.Describe(frame.Type);
            log.WriteLine(e.Message.Contains(what, StringComparison.Ordinal) ? $"hasync serve: {e.Message}" : $"hasync serve: {what}: {e.Message}");
            Ack(writer, id, PosixFiles.IsNoSpace(e) ? AckStatus.NoSpace : AckStatus.Failed, e.Message);
            FlushAnswers(writer); // the sender may be waiting for this very answer (a read, a claim)
        }
    }
}

/// <summary>The state directory cannot hold the journal: nothing can be checked or recorded, so nothing is served.</summary>
internal sealed class StateUnusableException(string message, Exception inner) : HaSyncException(message, inner);

/// <summary>A write refused because the passive changed the path on its own; the message says what and where the incoming version went.</summary>
internal sealed class ConflictException(string message) : HaSyncException(message);
