using System.Buffers.Binary;
using System.Diagnostics;
using HaSync.Guard;
using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>The agent refused or failed one request; the session goes on.</summary>
public sealed class AgentRequestException(string message) : HaSyncException(message);

/// <summary>The agent is gone or spoke nonsense; the session is over.</summary>
public sealed class SessionClosedException(string message, Exception? inner = null) : HaSyncException(message, inner);

/// <summary>An agent's answer to a write request.</summary>
public readonly record struct Ack(AckStatus Status, string Message);

/// <summary>Room on one of the passive's file systems, for the agent: free bytes and inodes (<see cref="ulong.MaxValue"/>
/// inodes when it does not count them).</summary>
public readonly record struct PassiveSpace(ulong Bytes, ulong Inodes);

/// <summary>
/// The sender's side of one agent session. Requests are written whole, one at a time (a lock), and are not
/// waited for: each <c>Send…</c> returns once its frames are written, with a task for the answer, so many
/// requests are in flight while the agent works through them in order. A dedicated reader thread routes
/// answers by request id. Frame IO is synchronous, as rsync's is: blocking pipe IO on threads meant for it
/// costs nothing, where bridging it into async code spun the thread pool. If the agent goes away every
/// pending request fails with the reason.
/// </summary>
public sealed class AgentSession : IDisposable
{
    private readonly FrameReader _reader;
    private readonly FrameWriter _writer;
    private readonly Lock _writeLock = new();
    private readonly Dictionary<uint, Pending> _pending = [];
    private readonly Func<string> _describePeer;
    private Thread? _readThread;
    private readonly Timer _pushTimer;                // ends a burst nobody flushed (see Send)
    private readonly Timer _heartbeatTimer;           // says we are here when quiet; finds a silent agent
    private readonly TimeSpan _heartbeat;
    private bool _unflushedChanges;                   // changes sent since the last Flush
    private long _lastChangeSent;                     // when the last of them was written out (a Stopwatch timestamp)
    private static readonly TimeSpan PushDelay = TimeSpan.FromMilliseconds(5);
    private readonly EntryCodec _requests = new();  // encodes entries in request order (under the write lock)
    private readonly EntryCodec _manifests = new(); // decodes manifest entries on the reader thread
    private Exception? _closed;
    private readonly TaskCompletionSource<SessionClosedException> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private uint _nextId;

    private sealed class Pending
    {
        public readonly TaskCompletionSource<object> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public List<FileEntry>? Entries;
        public ScanCounter? Counter;
        public MemoryStream? Data;
    }

    private AgentSession(Stream toAgent, Stream fromAgent, string target, Func<string> describePeer, TimeSpan heartbeat)
    {
        _writer = new FrameWriter(new BufferedStream(toAgent, 1 << 16)); // write requests go out in bursts, at Flush
        _reader = new FrameReader(fromAgent);
        _pushTimer = new Timer(_ => Push());
        _heartbeat = heartbeat;
        _heartbeatTimer = new Timer(_ => Heartbeat());
        Target = target;
        _describePeer = describePeer;
    }

    /// <summary>The target's name.</summary>
    public string Target { get; }

    /// <summary>The agent's root, as it reported it.</summary>
    public string RemoteRoot { get; private set; } = "";

    /// <summary>The agent's allowed paths, as it reported them.</summary>
    public IReadOnlyList<string> RemoteAllowed { get; private set; } = [];

    /// <summary>The mode bits the agent keeps as sent: all of them when it was started with <c>--allow-setid</c>, else all but
    /// set-user-id and set-group-id (<see cref="ModeBits"/>).</summary>
    public uint KeptModeBits { get; private set; } = ModeBits.All;

    /// <summary>The highest epoch the agent's node knows (it took it as the active, or accepted it), as its welcome said.</summary>
    public Epoch? AgentEpoch { get; private set; }

    /// <summary>Completes, with the reason, when the session is over (the agent went away or spoke nonsense).</summary>
    public Task<SessionClosedException> Ended => _ended.Task;

    /// <summary>Protocol bytes sent and received (before ssh's encryption).</summary>
    public long WireBytes => _writer.BytesWritten + _reader.BytesRead;

    /// <summary>Says hello, reads the agent's welcome and starts the reader thread.</summary>
    /// <param name="toAgent">The agent's stdin.</param>
    /// <param name="fromAgent">The agent's stdout.</param>
    /// <param name="target">Name for messages.</param>
    /// <param name="describePeer">Says why the agent went away (exit code, stderr), for messages.</param>
    /// <param name="heartbeat">How often a quiet side sends a heartbeat (default <see cref="Wire.DefaultHeartbeat"/>); five
    /// without a word from the agent and the session is over.</param>
    /// <param name="welcomeTimeout">How long the agent may take to answer the hello (default <see cref="Wire.WelcomeTimeout"/>):
    /// the remote shell may hang logging in, or the command never start an agent. The caller then stops the process.</param>
    public static AgentSession Open(Stream toAgent, Stream fromAgent, string target, Func<string> describePeer, TimeSpan? heartbeat = null,
        TimeSpan? welcomeTimeout = null)
    {
        var session = new AgentSession(toAgent, fromAgent, target, describePeer, heartbeat ?? Wire.DefaultHeartbeat);
        try
        {
            session._writer.Write(FrameType.Hello, Hello.Write(session._heartbeat));
            session._writer.Flush();
            var reading = Task.Factory.StartNew(session._reader.Read, TaskCreationOptions.LongRunning); // blocks for the whole login
            var limit = welcomeTimeout ?? Wire.WelcomeTimeout;
            if (Task.WaitAny([reading], limit) < 0)
                throw new IOException($"no answer from the agent {limit.TotalSeconds:0.#} s after it was started (the remote login or command hangs)");
            var welcome = Welcome.Read(reading.GetAwaiter().GetResult());
            (session.RemoteRoot, session.RemoteAllowed, session.AgentEpoch) = (welcome.Root, welcome.Allowed, welcome.Epoch);
            session.KeptModeBits = ModeBits.Kept(welcome.KeepsSetId);
        }
        catch (Exception e) when (e is ProtocolException or IOException)
        {
            Thread.Sleep(200); // let ssh's last words reach stderr
            string why = e is ProtocolException { TextInstead: { } text }
                ? $"the remote shell printed text before the agent started (\"{text}…\"): is the shell clean? Nothing may print on a " +
                  "non-interactive login (.bashrc, motd, a banner on stdout); a forced command in authorized_keys avoids the shell"
                : e.Message;
            throw new SessionClosedException($"target {target}: cannot start a session: {why}; the agent {describePeer()}", e);
        }
        session._readThread = new Thread(session.ReadLoop) { IsBackground = true, Name = $"hasync reader {target}" };
        session._readThread.Start();
        session._heartbeatTimer.Change(session._heartbeat, session._heartbeat);
        return session;
    }

    /// <summary>Claims <paramref name="epoch"/> as this session's term: no write is accepted before. With
    /// <paramref name="adopt"/> the agent overwrites what was changed on the passive (resync --force).</summary>
    /// <exception cref="FencedException">The agent knows a later epoch: another node has become active.</exception>
    public async Task ClaimAsync(Epoch epoch, bool adopt)
    {
        var ack = await Answer<Ack>(Send(FrameType.Claim, p => EpochWire.Write(p, epoch).U8(adopt ? (byte)1 : (byte)0), pending => { }, push: true)).ConfigureAwait(false);
        if (ack.Status != AckStatus.Ok)
            throw new FencedException($"target {Target}: {ack.Message}");
    }

    /// <summary>Asks for the passive's view of the watched set under <paramref name="paths"/>, sorted by path; each entry is
    /// counted by <paramref name="counter"/> as it arrives.</summary>
    public Task<List<FileEntry>> RequestManifest(IReadOnlyList<string> paths, ScanCounter? counter = null) => Answer<List<FileEntry>>(Send(FrameType.ManifestRequest, p =>
    {
        p.U32((uint)paths.Count);
        foreach (string path in paths)
            p.Text(path);
    }, pending => (pending.Entries, pending.Counter) = ([], counter), push: true));

    /// <summary>Asks for the librsync signature of the passive's copy of <paramref name="path"/>. Not pushed
    /// out until <paramref name="push"/> or a later request that is: ask for a batch, push with the last.</summary>
    public Task<byte[]> RequestSignature(string path, bool push = true) =>
        AsBytes(Send(FrameType.SignatureRequest, p => p.Text(path), pending => pending.Data = new(), push: push));

    /// <summary>Asks for up to <paramref name="maxBytes"/> of the passive's copy of <paramref name="path"/>.</summary>
    public Task<byte[]> RequestContent(string path, long maxBytes) =>
        AsBytes(Send(FrameType.ReadRequest, p => p.Text(path).I64(maxBytes), pending => pending.Data = new(), push: true));

    /// <summary>Asks how much room the passive's file system has where <paramref name="path"/> is or would be made. Not pushed
    /// out until <paramref name="push"/> or a later request that is.</summary>
    public async Task<PassiveSpace> RequestSpace(string path, bool push = true)
    {
        byte[] answer = await AsBytes(Send(FrameType.SpaceRequest, p => p.Text(path), pending => pending.Data = new(), push: push)).ConfigureAwait(false);
        return answer.Length == 16
            ? new(BinaryPrimitives.ReadUInt64BigEndian(answer), BinaryPrimitives.ReadUInt64BigEndian(answer.AsSpan(8)))
            : throw new ProtocolException($"the passive's free space for {path}: {answer.Length} bytes, not 16");
    }

    /// <summary>Ends a burst of changes: pushes the buffered requests and asks the agent to commit them. The agent
    /// answers the burst's requests once they are on its disk.</summary>
    public Task<Ack> SendFlush() => Answer<Ack>(Send(FrameType.Flush, p => { }, pending => { }, push: true));

    /// <summary>Sends a file: <paramref name="writeData"/> writes its data (the content, or a delta) into a stream that
    /// becomes Data frames. Returns once sent, with the agent's ack to come.</summary>
    public Task<Ack> SendPut(FileEntry entry, PutEncoding encoding, Action<Stream> writeData) =>
        Answer<Ack>(Send(FrameType.PutFile, p => { _requests.Write(p, entry); p.U8((byte)encoding); }, pending => { }, (id, writer) =>
        {
            using var data = new DataFrameWriteStream(writer, id);
            writeData(data);
            data.Flush();
        }));

    /// <summary>Creates a directory or fixes its owner and mode.</summary>
    public Task<Ack> SendMakeDirectory(FileEntry entry) => SendEntry(FrameType.MakeDirectory, entry);

    /// <summary>Creates or replaces a symlink.</summary>
    public Task<Ack> SendMakeSymlink(FileEntry entry) => SendEntry(FrameType.MakeSymlink, entry);

    /// <summary>Sets owner, mode and mtime of an existing path.</summary>
    public Task<Ack> SendSetMetadata(FileEntry entry) => SendEntry(FrameType.SetMetadata, entry);

    /// <summary>Removes a file, symlink or empty directory.</summary>
    public Task<Ack> SendDelete(string path) => Answer<Ack>(Send(FrameType.Delete, p => p.Text(path), pending => { }));

    private Task<Ack> SendEntry(FrameType type, FileEntry entry) => Answer<Ack>(Send(type, p => _requests.Write(p, entry), pending => { }));

    private static async Task<T> Answer<T>(Task<object> answer) => (T)await answer.ConfigureAwait(false);

    private async Task<byte[]> AsBytes(Task<object> answer)
    {
        object result = await answer.ConfigureAwait(false);
        return result is Ack ack
            ? throw new AgentRequestException($"target {Target}: {ack.Message}")
            : ((MemoryStream)result).ToArray();
    }

    /// <summary>Writes one request (and its data) under the write lock; returns the task of its answer. Requests whose
    /// answer the caller waits for are pushed out at once (<paramref name="push"/>); changes are buffered so a burst
    /// travels in few packets and is committed once, at SendFlush, or a few milliseconds after the last change for a
    /// caller that never flushes.</summary>
    private Task<object> Send(FrameType type, Action<PayloadWriter> fill, Action<Pending> prepare, Action<uint, FrameWriter>? data = null, bool push = false)
    {
        lock (_writeLock)
        {
            var pending = new Pending();
            prepare(pending);
            uint id;
            lock (_pending)
            {
                if (_closed is not null)
                    throw Closed(_closed);
                id = ++_nextId;
                _pending[id] = pending;
            }
            try
            {
                var payload = new PayloadWriter().U32(id);
                fill(payload);
                _writer.Write(type, payload);
                if (data is not null)
                {
                    data(id, _writer);
                    _writer.Write(FrameType.DataEnd, new PayloadWriter().U32(id));
                }
                _unflushedChanges = type switch
                {
                    FrameType.Flush => false,
                    FrameType.PutFile or FrameType.MakeDirectory or FrameType.MakeSymlink or FrameType.SetMetadata or FrameType.Delete => true,
                    _ => _unflushedChanges,
                };
                if (push)
                    _writer.Flush();
                if (_unflushedChanges)
                {
                    _lastChangeSent = Stopwatch.GetTimestamp();
                    _pushTimer.Change(PushDelay, Timeout.InfiniteTimeSpan);
                }
            }
            catch (IOException e)
            {
                Fail(e);
                throw Closed(e);
            }
            return pending.Done.Task;
        }
    }

    private void Push()
    {
        lock (_writeLock)
        {
            if (!_unflushedChanges || _closed is not null)
                return;
            // The timer also fires while a change is being written into a full pipe (the agent busy with the batch): that
            // sender is not done, and a flush then would cut a cold copy into a commit every few dozen files.
            var idle = Stopwatch.GetElapsedTime(_lastChangeSent);
            if (idle < PushDelay)
            {
                _pushTimer.Change(PushDelay - idle, Timeout.InfiniteTimeSpan);
                return;
            }
        }
        try
        {
            _ = SendFlush(); // its own answer matters to nobody; the changes' answers come with it
        }
        catch (SessionClosedException)
        {
            // the pending requests have been failed with the reason already
        }
    }

    private void Heartbeat()
    {
        if (_closed is not null)
            return;
        var limit = Wire.SilenceLimit(_heartbeat);
        if (_reader.Silence > limit)
        {
            Fail(new PeerSilentException($"nothing came from the agent for {limit.TotalSeconds:0.#} s (the link or the passive node is down)"));
            return;
        }
        try
        {
            _writer.HeartbeatIfQuiet(_heartbeat);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            Fail(e);
        }
    }

    private void ReadLoop()
    {
        try
        {
            while (_reader.Read() is { } frame)
                Route(frame);
            Fail(new IOException("the agent closed the connection"));
        }
        catch (Exception e) when (e is ProtocolException or IOException or ObjectDisposedException)
        {
            Fail(e);
        }
    }

    private void Route(Frame frame)
    {
        var payload = frame.Reader();
        if (frame.Type == FrameType.Acks)
        {
            AckFrames.Read(ref payload, (id, status, message) =>
            {
                var pending = PendingFor(id, frame.Type);
                if (pending.Entries is not null || pending.Data is not null)
                    Complete(id, null, new AgentRequestException($"target {Target}: {message}")); // a read request answered with an ack: it failed
                else
                    Complete(id, new Ack(status, message));
            });
            return;
        }
        uint requestId = payload.U32("id");
        var request = PendingFor(requestId, frame.Type);
        switch (frame.Type)
        {
            case FrameType.ManifestEntries when request.Entries is not null:
                while (!payload.AtEnd)
                {
                    var entry = _manifests.Read(ref payload);
                    byte mark = payload.U8("journal mark");
                    request.Entries.Add(mark == 0 ? entry : entry with
                    {
                        Local = Defined<LocalChange>.Is((LocalChange)mark) ? (LocalChange)mark : throw new ProtocolException($"entry {entry.Path}: unknown journal mark {mark}"),
                    });
                    request.Counter?.Add(entry);
                }
                return;
            case FrameType.ManifestEnd when request.Entries is not null:
                request.Entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path)); // the agent sends them as its walk meets them
                request.Counter?.Finish();
                Complete(requestId, request.Entries);
                return;
            case FrameType.Data when request.Data is not null:
                request.Data.Write(payload.Bytes("data"));
                return;
            case FrameType.DataEnd when request.Data is not null:
                Complete(requestId, request.Data);
                return;
            default:
                throw new ProtocolException($"unexpected {Wire.Describe(frame.Type)} for request {requestId}");
        }
    }

    private Pending PendingFor(uint id, FrameType type)
    {
        lock (_pending)
            return _pending.TryGetValue(id, out var pending)
                ? pending
                : throw new ProtocolException($"the agent answered request {id}, which is not pending ({type})");
    }

    private void Complete(uint id, object? result, Exception? error = null)
    {
        Pending pending;
        lock (_pending)
        {
            pending = _pending[id];
            _pending.Remove(id);
        }
        if (error is not null)
            pending.Done.TrySetException(error);
        else
            pending.Done.TrySetResult(result!);
    }

    private void Fail(Exception reason)
    {
        List<Pending> orphans;
        lock (_pending)
        {
            _closed ??= reason;
            orphans = [.. _pending.Values];
            _pending.Clear();
        }
        var closed = Closed(reason);
        foreach (var pending in orphans)
            pending.Done.TrySetException(closed);
        _ended.TrySetResult(closed);
    }

    private SessionClosedException Closed(Exception reason) =>
        new($"target {Target}: session lost: {reason.Message}; the agent {_describePeer()}", reason);

    /// <summary>Says goodbye (best effort); the reader thread ends when the agent closes its stdout.</summary>
    public void Dispose()
    {
        _pushTimer.Dispose();
        _heartbeatTimer.Dispose();
        lock (_writeLock)
        {
            try
            {
                if (_closed is null)
                {
                    _writer.Write(FrameType.Goodbye, new PayloadWriter());
                    _writer.Flush();
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                // the agent is already gone (or its pipe closed by its owner first); nothing to say goodbye to
            }
        }
    }
}
