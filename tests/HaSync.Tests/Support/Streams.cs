namespace HaSync.Tests.Support;

/// <summary>A non-seekable stream that yields <c>length</c> bytes by repeating <c>pattern</c>: gigabytes of
/// input without gigabytes of memory. <c>onRead</c> sees the running total (used to cancel mid-way).</summary>
internal sealed class RepeatingStream(byte[] pattern, long length, Action<long>? onRead = null) : Stream
{
    private long _position;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

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

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Counts what is written and drops it; <c>onWrite</c> sees the running total.</summary>
internal sealed class CountingStream(Action<long>? onWrite = null) : Stream
{
    public long Count { get; private set; }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Count += buffer.Length;
        onWrite?.Invoke(Count);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Count;
    public override long Position { get => Count; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
