using System.Runtime.ExceptionServices;

namespace HaSync.Protocol;

/// <summary>The other side has sent nothing, not even a heartbeat or the rest of a frame it began, for longer than the
/// silence limit.</summary>
public sealed class PeerSilentException(string message) : HaSyncException(message);

/// <summary>
/// The agent's stdin, read ahead by a thread of its own into a buffer of up to 8 MiB, with a limit on silence: a read
/// that would wait longer than <see cref="Limit"/> for its first byte fails with <see cref="PeerSilentException"/>. A
/// sender whose link died without a word, or that stopped in the middle of a frame, cannot hold the agent (and the files
/// of its open batch) for ever.
/// </summary>
/// <remarks>Read ahead, because sshd copes badly with a reader slower than the link: what it cannot write into the pipe
/// it keeps in a channel buffer that it grows and compacts by copying, up to its window (2 MiB). A 6 MB delta of a 100 MB
/// file made sshd take 58,000 page faults and a core for a third of the resync; drained at once, it takes none.</remarks>
public sealed class SilenceLimitedStream : ReadOnlyStream
{
    private const int Capacity = 8 << 20;
    private const int MaxRead = 1 << 20;
    private readonly Stream _inner;
    private readonly byte[] _ring = GC.AllocateUninitializedArray<byte>(Capacity); // pages are resident once used only
    private readonly object _lock = new();
    private long _consumed, _filled; // bytes taken by Read and put in by the reader, since the start
    private bool _ended;
    private ExceptionDispatchInfo? _failure;

    /// <param name="inner">The descriptor's stream (unbuffered: every read of it is a read(2)), read on a background thread
    /// from now on, until its end. It is not closed here: closing a descriptor that a thread is reading waits for the read
    /// (after the goodbye, the sender may hold the pipe open until the agent is gone).</param>
    public SilenceLimitedStream(Stream inner)
    {
        _inner = inner;
        new Thread(ReadAhead) { IsBackground = true, Name = "hasync stdin" }.Start();
    }

    /// <summary>How long a read waits for data; until the hello says the sender's heartbeat, a minute.</summary>
    public TimeSpan Limit { get; set; } = TimeSpan.FromMinutes(1);

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        int offset, count;
        bool Waiting() => _filled == _consumed && !_ended && _failure is null; // nothing to hand out, nothing to say
        lock (_lock)
        {
            long deadline = Environment.TickCount64 + (long)Limit.TotalMilliseconds;
            while (Waiting())
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0 || !Monitor.Wait(_lock, TimeSpan.FromMilliseconds(left)) && Waiting())
                    throw new PeerSilentException($"nothing came from the sender for {Limit.TotalSeconds:0.#} s (its link or its node is down, or it stopped in the middle of a message)");
            }
            if (_filled == _consumed)
            {
                _failure?.Throw();
                return 0;
            }
            offset = (int)(_consumed % Capacity);
            count = (int)Math.Min(Math.Min(buffer.Length, _filled - _consumed), Capacity - offset);
        }
        _ring.AsSpan(offset, count).CopyTo(buffer); // the reader never writes over bytes not yet consumed
        lock (_lock)
        {
            bool wasFull = _filled - _consumed == Capacity;
            _consumed += count;
            if (wasFull)
                Monitor.PulseAll(_lock);
        }
        return count;
    }

    private void ReadAhead()
    {
        while (true)
        {
            int offset, count;
            lock (_lock)
            {
                while (_filled - _consumed == Capacity)
                    Monitor.Wait(_lock);
                offset = (int)(_filled % Capacity);
                count = (int)Math.Min(Math.Min(Capacity - (_filled - _consumed), Capacity - offset), MaxRead);
            }
            int read;
            try
            {
                read = _inner.Read(_ring, offset, count);
            }
            catch (Exception e)
            {
                lock (_lock)
                {
                    _failure = ExceptionDispatchInfo.Capture(e);
                    Monitor.PulseAll(_lock);
                }
                return;
            }
            lock (_lock)
            {
                bool wasEmpty = _filled == _consumed;
                _filled += read;
                _ended = read == 0;
                if (wasEmpty || _ended)
                    Monitor.PulseAll(_lock);
            }
            if (read == 0)
                return;
        }
    }
}
