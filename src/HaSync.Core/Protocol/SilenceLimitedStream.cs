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
    private const int Refill = 1 << 20; // a full ring is read into again once this much of it is free, not at every byte freed
    private readonly Stream _inner;
    private readonly byte[] _ring = GC.AllocateUninitializedArray<byte>(Capacity); // pages are resident once used only
    private readonly object _lock = new();
    // Each counter is written by one side only; a side takes the lock only to sleep or to wake the other (a frame is read
    // in two calls, so locking every call made the two threads contend, a futex call each, several times per file).
    private long _consumed, _filled; // bytes taken by Read and put in by the reader, since the start
    private int _readerAsleep, _consumerAsleep;
    private volatile bool _ended;
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

    /// <summary>Called on the reading thread when a read finds nothing buffered, before it waits: work that can use the
    /// time the sender takes.</summary>
    public Action? Idle { get; set; }

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        long consumed = _consumed;
        long filled = Volatile.Read(ref _filled);
        if (filled == consumed && Idle is { } idle)
        {
            idle();
            filled = Volatile.Read(ref _filled);
        }
        if (filled == consumed)
            filled = WaitForData(consumed);
        if (filled == consumed)
        {
            Volatile.Read(ref _failure)?.Throw();
            return 0;
        }
        int offset = (int)(consumed % Capacity);
        int count = (int)Math.Min(Math.Min(buffer.Length, filled - consumed), Capacity - offset);
        _ring.AsSpan(offset, count).CopyTo(buffer); // the reader never writes over bytes not yet consumed
        Interlocked.Exchange(ref _consumed, consumed + count); // a full fence: the flag below is read after the count is out
        if (Volatile.Read(ref _readerAsleep) != 0 && Capacity - (Volatile.Read(ref _filled) - consumed - count) >= Refill)
            Wake();
        return count;
    }

    /// <summary>Sleeps until the reader put in more than <paramref name="consumed"/>, reached the end or failed; returns
    /// what it filled then. Fails with <see cref="PeerSilentException"/> after <see cref="Limit"/>.</summary>
    private long WaitForData(long consumed)
    {
        long deadline = Environment.TickCount64 + (long)Limit.TotalMilliseconds;
        lock (_lock)
        {
            Interlocked.Exchange(ref _consumerAsleep, 1); // a full fence: the reader's count is read after the flag is up
            try
            {
                while (Volatile.Read(ref _filled) == consumed && !_ended)
                {
                    long left = deadline - Environment.TickCount64;
                    if (left <= 0 || !Monitor.Wait(_lock, TimeSpan.FromMilliseconds(left)) && Volatile.Read(ref _filled) == consumed && !_ended)
                        throw new PeerSilentException($"nothing came from the sender for {Limit.TotalSeconds:0.#} s (its link or its node is down, or it stopped in the middle of a message)");
                }
            }
            finally
            {
                Volatile.Write(ref _consumerAsleep, 0);
            }
        }
        return Volatile.Read(ref _filled);
    }

    private void Wake()
    {
        lock (_lock)
            Monitor.PulseAll(_lock);
    }

    private void ReadAhead()
    {
        while (true)
        {
            long filled = _filled;
            if (Capacity - (filled - Volatile.Read(ref _consumed)) < Refill)
            {
                lock (_lock)
                {
                    Interlocked.Exchange(ref _readerAsleep, 1); // a full fence, as in WaitForData
                    while (Capacity - (filled - Volatile.Read(ref _consumed)) < Refill)
                        Monitor.Wait(_lock);
                    Volatile.Write(ref _readerAsleep, 0);
                }
            }
            long free = Capacity - (filled - Volatile.Read(ref _consumed));
            int offset = (int)(filled % Capacity);
            int count = (int)Math.Min(Math.Min(free, Capacity - offset), MaxRead);
            int read;
            try
            {
                read = _inner.Read(_ring, offset, count);
            }
            catch (Exception e)
            {
                Volatile.Write(ref _failure, ExceptionDispatchInfo.Capture(e));
                _ended = true;
                Wake(); // under the lock, so a consumer about to sleep either sees the end or is woken
                return;
            }
            if (read == 0)
                _ended = true;
            Interlocked.Exchange(ref _filled, filled + read); // a full fence: the flag below is read after the count is out
            if (read == 0 || Volatile.Read(ref _consumerAsleep) != 0)
                Wake();
            if (read == 0)
                return;
        }
    }
}
