using HaSync.Protocol;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>The agent refused or failed one request; the session goes on.</summary>
public sealed class AgentRequestException(string message) : HaSyncException(message);

/// <summary>The agent is gone or spoke nonsense; the session is over.</summary>
public sealed class SessionClosedException(string message, Exception? inner = null) : HaSyncException(message, inner);

/// <summary>An agent's answer to a write request.</summary>
public readonly record struct Ack(AckStatus Status, string Message);

/// <summary>
/// The sender's side of one agent session. Requests are written whole, one at a time (a write lock), and
/// are not waited for: each <c>Send…</c> returns once its frames are written, with a task for the answer,
/// so many requests are in flight while the agent works through them in order. A read loop routes answers
/// by request id. If the agent goes away every pending request fails with the reason.
/// </summary>
public sealed class AgentSession : IAsyncDisposable
{
    private readonly FrameReader _reader;
    private readonly FrameWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Dictionary<uint, Pending> _pending = [];
    private readonly Func<string> _describePeer;
    private readonly CancellationTokenSource _abort = new(); // stops the read loop
    private Task _readLoop = Task.CompletedTask;
    private Exception? _closed;
    private uint _nextId;

    private sealed class Pending
    {
        public readonly TaskCompletionSource<object> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public List<FileEntry>? Entries;
        public MemoryStream? Data;
    }

    private AgentSession(Stream toAgent, Stream fromAgent, string target, Func<string> describePeer)
    {
        _writer = new FrameWriter(toAgent);
        _reader = new FrameReader(fromAgent);
        Target = target;
        _describePeer = describePeer;
    }

    /// <summary>The target's name.</summary>
    public string Target { get; }

    /// <summary>The agent's root, as it reported it.</summary>
    public string RemoteRoot { get; private set; } = "";

    /// <summary>The agent's allowed paths, as it reported them.</summary>
    public IReadOnlyList<string> RemoteAllowed { get; private set; } = [];

    /// <summary>Protocol bytes sent and received (before ssh's encryption).</summary>
    public long WireBytes => _writer.BytesWritten + _reader.BytesRead;

    /// <summary>Says hello and reads the agent's welcome.</summary>
    /// <param name="toAgent">The agent's stdin.</param>
    /// <param name="fromAgent">The agent's stdout.</param>
    /// <param name="target">Name for messages.</param>
    /// <param name="describePeer">Says why the agent went away (exit code, stderr), for messages.</param>
    /// <param name="cancellationToken">Cancels the handshake.</param>
    public static async Task<AgentSession> OpenAsync(Stream toAgent, Stream fromAgent, string target, Func<string> describePeer,
        CancellationToken cancellationToken = default)
    {
        var session = new AgentSession(toAgent, fromAgent, target, describePeer);
        try
        {
            await session._writer.WriteAsync(FrameType.Hello, new PayloadWriter().U32(Wire.Magic).U16(Wire.Version), cancellationToken).ConfigureAwait(false);
            await session._writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            var welcome = await session._reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (welcome is not { Type: FrameType.Welcome })
                throw new ProtocolException(welcome is null ? "the agent closed the connection before its welcome" : $"expected a welcome, got {welcome.Value.Type}");
            var payload = welcome.Value.Reader();
            uint magic = payload.U32("magic");
            ushort version = payload.U16("version");
            if (magic != Wire.Magic || version != Wire.Version)
                throw new ProtocolException($"the agent speaks magic 0x{magic:x8} version {version}, we speak version {Wire.Version}");
            session.RemoteRoot = payload.Text("root");
            var allowed = new List<string>();
            for (uint i = payload.U32("allowed count"); i > 0; i--)
                allowed.Add(payload.Text("allowed"));
            payload.End();
            session.RemoteAllowed = allowed;
        }
        catch (Exception e) when (e is ProtocolException or IOException)
        {
            await Task.Delay(200, CancellationToken.None).ConfigureAwait(false); // let ssh's last words reach stderr
            throw new SessionClosedException($"target {target}: cannot start a session: {e.Message}; the agent {describePeer()}", e);
        }
        session._readLoop = Task.Run(session.ReadLoopAsync, CancellationToken.None);
        return session;
    }

    /// <summary>The passive's view of the watched set under <paramref name="paths"/>.</summary>
    public async Task<List<FileEntry>> ManifestAsync(IReadOnlyList<string> paths, CancellationToken cancellationToken = default)
    {
        var answer = await SendAsync(FrameType.ManifestRequest, (id, p) =>
        {
            p.U32((uint)paths.Count);
            foreach (string path in paths)
                p.Text(path);
        }, pending => pending.Entries = [], cancellationToken: cancellationToken).ConfigureAwait(false);
        return (List<FileEntry>)await answer.ConfigureAwait(false);
    }

    /// <summary>The librsync signature of the passive's copy of <paramref name="path"/>.</summary>
    public async Task<Task<byte[]>> SendSignatureRequestAsync(string path, CancellationToken cancellationToken = default)
    {
        var answer = await SendAsync(FrameType.SignatureRequest, (_, p) => p.Text(path), pending => pending.Data = new(), cancellationToken: cancellationToken).ConfigureAwait(false);
        return AsBytes(answer);
    }

    /// <summary>Up to <paramref name="maxBytes"/> of the passive's copy of <paramref name="path"/>.</summary>
    public async Task<byte[]> ReadAsync(string path, long maxBytes, CancellationToken cancellationToken = default)
    {
        var answer = await SendAsync(FrameType.ReadRequest, (_, p) => p.Text(path).I64(maxBytes), pending => pending.Data = new(), cancellationToken: cancellationToken).ConfigureAwait(false);
        return await AsBytes(answer).ConfigureAwait(false);
    }

    /// <summary>Sends a file: <paramref name="writeData"/> writes its data (the content, or a delta) into a stream that
    /// becomes Data frames. Returns once sent, with the agent's ack to come.</summary>
    public async Task<Task<Ack>> SendPutAsync(FileEntry entry, PutEncoding encoding, Action<Stream> writeData, CancellationToken cancellationToken = default)
    {
        var answer = await SendAsync(FrameType.PutFile, (_, p) => p.Entry(entry).U8((byte)encoding), pending => { }, (id, writer) =>
        {
            var data = new DataFrameWriteStream(writer, id);
            writeData(data);
            data.Flush();
            return data.Sent;
        }, cancellationToken).ConfigureAwait(false);
        return AsAck(answer);
    }

    /// <summary>Creates a directory or fixes its owner and mode.</summary>
    public Task<Task<Ack>> SendMakeDirectoryAsync(FileEntry entry, CancellationToken cancellationToken = default) =>
        SendEntryAsync(FrameType.MakeDirectory, entry, cancellationToken);

    /// <summary>Creates or replaces a symlink.</summary>
    public Task<Task<Ack>> SendMakeSymlinkAsync(FileEntry entry, CancellationToken cancellationToken = default) =>
        SendEntryAsync(FrameType.MakeSymlink, entry, cancellationToken);

    /// <summary>Sets owner, mode and mtime of an existing path.</summary>
    public Task<Task<Ack>> SendSetMetadataAsync(FileEntry entry, CancellationToken cancellationToken = default) =>
        SendEntryAsync(FrameType.SetMetadata, entry, cancellationToken);

    /// <summary>Removes a file, symlink or empty directory.</summary>
    public async Task<Task<Ack>> SendDeleteAsync(string path, CancellationToken cancellationToken = default) =>
        AsAck(await SendAsync(FrameType.Delete, (_, p) => p.Text(path), pending => { }, cancellationToken: cancellationToken).ConfigureAwait(false));

    private async Task<Task<Ack>> SendEntryAsync(FrameType type, FileEntry entry, CancellationToken cancellationToken) =>
        AsAck(await SendAsync(type, (_, p) => p.Entry(entry), pending => { }, cancellationToken: cancellationToken).ConfigureAwait(false));

    private static async Task<Ack> AsAck(Task<object> answer) => (Ack)await answer.ConfigureAwait(false);

    private async Task<byte[]> AsBytes(Task<object> answer)
    {
        object result = await answer.ConfigureAwait(false);
        return result is Ack ack
            ? throw new AgentRequestException($"target {Target}: {ack.Message}")
            : ((MemoryStream)result).ToArray();
    }

    /// <summary>Writes one request (and its data) under the write lock; returns the task of its answer.</summary>
    private async Task<Task<object>> SendAsync(FrameType type, Action<uint, PayloadWriter> fill, Action<Pending> prepare,
        Func<uint, FrameWriter, long>? data = null, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
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
                fill(id, payload);
                await _writer.WriteAsync(type, payload, cancellationToken).ConfigureAwait(false);
                if (data is not null)
                {
                    // Data streams are written synchronously (the delta encoder is a synchronous loop): off the caller's thread.
                    await Task.Run(() => data(id, _writer), cancellationToken).ConfigureAwait(false);
                    await _writer.WriteAsync(FrameType.DataEnd, new PayloadWriter().U32(id), cancellationToken).ConfigureAwait(false);
                }
                await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                Fail(e);
                throw Closed(e);
            }
            return pending.Done.Task;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await _reader.ReadAsync(_abort.Token).ConfigureAwait(false) is { } frame)
                Route(frame);
            Fail(new IOException("the agent closed the connection"));
        }
        catch (Exception e) when (e is ProtocolException or IOException or OperationCanceledException)
        {
            Fail(e);
        }
    }

    private void Route(Frame frame)
    {
        var payload = frame.Reader();
        uint id = payload.U32("id");
        Pending? pending;
        lock (_pending)
            _pending.TryGetValue(id, out pending);
        if (pending is null)
            throw new ProtocolException($"the agent answered request {id}, which is not pending ({frame.Type})");
        switch (frame.Type)
        {
            case FrameType.ManifestEntry when pending.Entries is not null:
                pending.Entries.Add(EntryCodec.Entry(ref payload));
                payload.End();
                return;
            case FrameType.ManifestEnd when pending.Entries is not null:
                Complete(id, pending.Entries);
                return;
            case FrameType.Data when pending.Data is not null:
                pending.Data.Write(payload.Bytes("data"));
                return;
            case FrameType.DataEnd when pending.Data is not null:
                Complete(id, pending.Data);
                return;
            case FrameType.Ack:
                var status = (AckStatus)payload.U8("status");
                string message = payload.Text("message");
                payload.End();
                if (pending.Entries is not null && status == AckStatus.Failed)
                {
                    Complete(id, null, new AgentRequestException($"target {Target}: {message}"));
                    return;
                }
                Complete(id, new Ack(status, message));
                return;
            default:
                throw new ProtocolException($"unexpected {frame.Type} frame for request {id}");
        }
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
        foreach (var pending in orphans)
            pending.Done.TrySetException(Closed(reason));
    }

    private SessionClosedException Closed(Exception reason) =>
        new($"target {Target}: session lost: {reason.Message}; the agent {_describePeer()}", reason);

    /// <summary>Says goodbye (best effort) and stops reading.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _writeLock.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            if (_closed is null)
            {
                await _writer.WriteAsync(FrameType.Goodbye, new PayloadWriter()).ConfigureAwait(false);
                await _writer.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (IOException)
        {
            // the agent is already gone; nothing to say goodbye to
        }
        await _abort.CancelAsync().ConfigureAwait(false);
        await _readLoop.ConfigureAwait(false);
        _abort.Dispose();
    }
}
