namespace HaSync.Protocol;

/// <summary>The other side has sent nothing, not even a heartbeat or the rest of a frame it began, for longer than the
/// silence limit.</summary>
public sealed class PeerSilentException(string message) : HaSyncException(message);

/// <summary>
/// The agent's stdin, buffered, with a limit on silence: a read that would wait longer than <see cref="Limit"/> for its
/// first byte fails with <see cref="PeerSilentException"/>. A sender whose link died without a word, or that stopped in
/// the middle of a frame, cannot hold the agent (and the files of its open batch) for ever.
/// </summary>
/// <param name="inner">The descriptor's stream (unbuffered: every read of it is a read(2)).</param>
/// <param name="descriptor">The descriptor it reads, polled before each read.</param>
public sealed class SilenceLimitedStream(Stream inner, int descriptor) : ReadOnlyStream
{
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _start, _end;

    /// <summary>How long a read waits for data; until the hello says the sender's heartbeat, a minute.</summary>
    public TimeSpan Limit { get; set; } = TimeSpan.FromMinutes(1);

    /// <inheritdoc/>
    public override int Read(Span<byte> buffer)
    {
        if (_start == _end)
        {
            if (!Interop.Libc.WaitReadable(descriptor, (int)Limit.TotalMilliseconds))
                throw new PeerSilentException($"nothing came from the sender for {Limit.TotalSeconds:0.#} s (its link or its node is down, or it stopped in the middle of a message)");
            _start = 0;
            _end = inner.Read(_buffer);
            if (_end == 0)
                return 0;
        }
        int count = Math.Min(buffer.Length, _end - _start);
        _buffer.AsSpan(_start, count).CopyTo(buffer);
        _start += count;
        return count;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
            inner.Dispose();
        base.Dispose(disposing);
    }
}
