namespace HaSync.Protocol;

/// <summary>A forward-only stream that is only written: what it does not do, said once for the streams of this kind
/// (<see cref="ReadOnlyStream"/> is its twin). Its length and position are the bytes written so far.</summary>
public abstract class WriteOnlyStream : Stream
{
    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    /// <inheritdoc/>
    public abstract override void Write(ReadOnlySpan<byte> buffer);
    /// <summary>Bytes written so far.</summary>
    public abstract override long Length { get; }
    /// <inheritdoc/>
    public override long Position { get => Length; set => throw new NotSupportedException(); }
    /// <inheritdoc/>
    public override bool CanRead => false;
    /// <inheritdoc/>
    public override bool CanSeek => false;
    /// <inheritdoc/>
    public override bool CanWrite => true;
    /// <inheritdoc/>
    public override void Flush() { }
    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();
}
