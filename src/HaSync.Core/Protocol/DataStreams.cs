using HaSync.Delta;

namespace HaSync.Protocol;

/// <summary>Reads the Data frames of one request as a stream, up to its DataEnd.</summary>
internal sealed class DataFrameReadStream(Func<Frame?> nextFrame, uint id) : ReadOnlyStream
{
    private ReadOnlyMemory<byte> _current;
    private bool _ended;

    public long Received { get; private set; }

    public override int Read(Span<byte> buffer)
    {
        while (_current.IsEmpty)
        {
            if (_ended)
                return 0;
            var frame = nextFrame()
                ?? throw new ProtocolException($"reading data of request {id}: connection closed before DataEnd");
            var payload = frame.Reader();
            uint frameId = payload.U32("id");
            if (frameId != id || frame.Type is not (FrameType.Data or FrameType.DataEnd))
                throw new ProtocolException($"reading data of request {id}: got {Wire.Describe(frame.Type)} for request {frameId}");
            if (frame.Type == FrameType.DataEnd)
            {
                payload.End();
                _ended = true;
                return 0;
            }
            int length = payload.Bytes("data").Length;
            _current = frame.Payload[^length..];
            Received += length;
        }
        int take = Math.Min(buffer.Length, _current.Length);
        _current.Span[..take].CopyTo(buffer);
        _current = _current[take..];
        return take;
    }

    /// <summary>Reads and drops the rest of the request's data, so the next frame is the next request.</summary>
    public void Drain()
    {
        byte[] sink = System.Buffers.ArrayPool<byte>.Shared.Rent(Wire.DataChunk);
        while (Read(sink, 0, Wire.DataChunk) > 0) { }
        System.Buffers.ArrayPool<byte>.Shared.Return(sink);
    }

    public override long Position { get => Received; set => throw new NotSupportedException(); }
}

/// <summary>Writes what it is given as Data frames of one request (the caller holds the writer and sends DataEnd).</summary>
internal sealed class DataFrameWriteStream(FrameWriter writer, uint id) : WriteOnlyStream
{
    // Pooled: a put of a 20-byte file must not cost a 256 KiB allocation (a burst of 10,000 files made that 2.5 GB
    // of large-object garbage and hundreds of full collections).
    private byte[] _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Wire.DataChunk);
    private int _used;

    public long Sent { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int take = Math.Min(buffer.Length, Wire.DataChunk - _used);
            buffer[..take].CopyTo(_buffer.AsSpan(_used));
            _used += take;
            buffer = buffer[take..];
            if (_used == Wire.DataChunk)
                Flush();
        }
    }

    public override void Flush()
    {
        if (_used == 0)
            return;
        writer.WriteData(id, _buffer.AsSpan(0, _used));
        Sent += _used;
        _used = 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _buffer.Length > 0)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
        base.Dispose(disposing);
    }

    public override long Length => Sent + _used;
}

/// <summary>Passes writes through while computing their content hash (see <see cref="Scanning.ContentHasher"/>). Given the
/// basis's block digests (<see cref="UseBasisDigests"/>), a delta's copied blocks that are whole blocks of both files take
/// the basis's digest instead of being hashed again: a large file with a few edits is mostly such blocks.</summary>
internal sealed class HashingWriteStream(Stream inner, long expectedLength) : WriteOnlyStream, ICopyAwareOutput
{
    private readonly Scanning.ContentHasher _hasher = new(expectedLength);
    private Signature? _basis; // full BLAKE2b block digests of the basis, of the content hash's block length
    private long _basisFullBlocks;   // how many of them are of whole blocks (not the basis's short last one)
    private long _copyFrom = -1;     // the basis offset of the next byte written, while a copy is written

    public long Written { get; private set; }

    /// <summary>Why the hash of what was written cannot be trusted, when it cannot (see <see cref="Distrust"/>).</summary>
    public string? Distrusted { get; private set; }

    /// <summary>The content hash, or null when fewer or more bytes than expected were written, or it is distrusted.</summary>
    public byte[]? Finish() => _hasher.Finish() is { } hash && Distrusted is null ? hash : null;

    /// <summary>The hash is not to be trusted: digests lent by the basis may not be those of the bytes copied.</summary>
    public void Distrust(string why) => Distrusted = why;

    /// <summary>Takes the block digests of the basis (<paramref name="basisLength"/> bytes) for the copies that follow;
    /// true when taken: its blocks are this content's blocks (same length) and its strong sums whole BLAKE2b digests.</summary>
    public bool UseBasisDigests(Signature basis, long basisLength)
    {
        if (basis.Parameters.BlockLength != _hasher.BlockLength || basis.Parameters.StrongLength != Blake2b.HashLength
            || !basis.Parameters.Magic.UsesBlake2() || basis.Count != (basisLength + _hasher.BlockLength - 1) / _hasher.BlockLength)
            return false;
        (_basis, _basisFullBlocks) = (basis, basisLength / _hasher.BlockLength);
        return true;
    }

    void ICopyAwareOutput.CopyFollows(long basisPosition) => _copyFrom = basisPosition;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_copyFrom >= 0 && _basis is { } basis)
            HashCopy(buffer, basis);
        else
            _hasher.Update(buffer);
        if (_copyFrom >= 0)
            _copyFrom += buffer.Length;
        inner.Write(buffer);
        Written += buffer.Length;
    }

    private void HashCopy(ReadOnlySpan<byte> copied, Signature basis)
    {
        int blockLength = _hasher.BlockLength;
        if ((Written - _copyFrom) % blockLength != 0)
        {
            _hasher.Update(copied); // shifted: no block of this content is a block of the basis
            return;
        }
        int head = (int)Math.Min(copied.Length, (blockLength - Written % blockLength) % blockLength);
        _hasher.Update(copied[..head]);
        long first = (_copyFrom + head) / blockLength;
        int whole = (int)Math.Clamp(Math.Min((copied.Length - head) / blockLength, _basisFullBlocks - first), 0, int.MaxValue);
        if (whole > 0)
            _hasher.AddKnownBlocks(basis.StrongSums((int)first, whole));
        _hasher.Update(copied[(head + whole * blockLength)..]);
    }

    public override void Flush() => inner.Flush();
    public override long Length => Written;
}
