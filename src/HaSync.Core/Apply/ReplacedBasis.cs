using HaSync.Interop;

namespace HaSync.Apply;

/// <summary>
/// The passive's copy a delta is applied to, read through this so that its pages leave the page cache a few MiB at a time
/// as the patch consumes them: the file is about to be replaced, and the new one's pages then take the memory just freed
/// instead of fresh memory. A large patch otherwise holds both versions in memory at its end, and on a VM that hands free
/// memory back to its host, the first touch of each fresh page took most of a 100 MB patch's time. Never a matter of
/// correctness: a page read again (a copy from behind) comes from the disk, and a patch that fails leaves the file intact.
/// </summary>
internal sealed class ReplacedBasis(FileStream basis) : Stream
{
    private const long DropStep = 4 << 20;
    private long _dropped; // pages before this offset were dropped

    public override int Read(Span<byte> buffer)
    {
        int read = basis.Read(buffer);
        long end = basis.Position;
        if (end - _dropped >= DropStep)
        {
            Libc.DropCached((int)basis.SafeFileHandle.DangerousGetHandle(), _dropped, end - _dropped);
            _dropped = end;
        }
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override long Seek(long offset, SeekOrigin origin) => basis.Seek(offset, origin);
    public override long Length => basis.Length;
    public override long Position { get => basis.Position; set => basis.Position = value; }
    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
