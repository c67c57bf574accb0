namespace HaSync.Tests.Support;

/// <summary>A non-seekable stream that yields <c>length</c> bytes by repeating <c>pattern</c>: gigabytes of
/// input without gigabytes of memory. <c>onRead</c> sees the running total (used to cancel mid-way).</summary>
internal sealed class RepeatingStream(byte[] pattern, long length, Action<long>? onRead = null) : HaSync.Protocol.ReadOnlyStream
{
    private long _position;

    public override int Read(Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length && _position < length)
        {
            int at = (int)(_position % pattern.Length);
            int take = (int)Math.Min(Math.Min(buffer.Length - total, pattern.Length - at), length - _position);
            pattern.AsSpan(at, take).CopyTo(buffer[total..]);
            total += take;
            _position += take;
        }
        onRead?.Invoke(_position);
        return total;
    }

    public override long Position { get => _position; set => throw new NotSupportedException(); }
}

/// <summary>Counts what is written and drops it; <c>onWrite</c> sees the running total.</summary>
internal sealed class CountingStream(Action<long>? onWrite = null) : HaSync.Protocol.WriteOnlyStream
{
    public long Count { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Count += buffer.Length;
        onWrite?.Invoke(Count);
    }

    public override long Length => Count;
}
