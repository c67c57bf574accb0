using System.Buffers.Binary;
using HaSync.Delta;

namespace HaSync.Scanning;

/// <summary>
/// The content hash HaSync compares files by: BLAKE2b-256 over the file's length (big-endian uint64) followed
/// by the BLAKE2b-256 digest of each block, blocks cut at <see cref="SignatureParameters.SyncBlockLength"/>. The
/// block digests are exactly the strong sums of <c>rdiff signature -b BLOCK FILE</c>, so the hash can be checked
/// with standard tools; and because one pass yields both, hashing a file also yields its librsync signature
/// (with the RabinKarp weak sums added): the agent answers a delta's signature request without reading the file again.
/// </summary>
public sealed class ContentHasher
{
    private readonly long _length;
    private readonly int _blockLength;
    private readonly Signature? _signature;
    private Blake2b _outer = new();
    private Blake2b _block = new();
    private RabinKarpSum _weak = new();
    private int _inBlock;
    private long _total;

    /// <summary>Starts hashing content announced as <paramref name="length"/> bytes.</summary>
    /// <param name="length">The content's length: it sets the block length and is part of the hash.</param>
    /// <param name="collectSignature">Also build the content's librsync signature (sync block length, full strong sums).</param>
    public ContentHasher(long length, bool collectSignature = false)
    {
        _length = length;
        var parameters = SignatureParameters.Choose(length, blockLength: SignatureParameters.SyncBlockLength(length));
        _blockLength = parameters.BlockLength;
        if (collectSignature)
            _signature = new Signature(parameters, (int)Math.Min(length / _blockLength + 1, 1 << 24));
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(header, length);
        _outer.Update(header);
    }

    /// <summary>Bytes hashed so far.</summary>
    public long Total => _total;

    /// <summary>Adds content.</summary>
    public void Update(ReadOnlySpan<byte> data)
    {
        _total += data.Length;
        while (!data.IsEmpty)
        {
            int take = Math.Min(_blockLength - _inBlock, data.Length);
            _block.Update(data[..take]);
            if (_signature is not null)
                _weak.Update(data[..take]);
            _inBlock += take;
            data = data[take..];
            if (_inBlock == _blockLength)
                FinishBlock();
        }
    }

    /// <summary>The content hash; null when the content was not as long as announced (the hash would not be comparable).</summary>
    public byte[]? Finish()
    {
        if (_inBlock > 0)
            FinishBlock();
        var digest = new byte[Blake2b.HashLength];
        _outer.Finish(digest);
        return _total == _length ? digest : null;
    }

    /// <summary>The content's signature, when collected and the content was as long as announced.</summary>
    public Signature? Signature => _total == _length ? _signature : null;

    private void FinishBlock()
    {
        Span<byte> digest = stackalloc byte[Blake2b.HashLength];
        _block.Finish(digest);
        _outer.Update(digest);
        _signature?.Add(_weak.Digest, digest);
        _block = new Blake2b();
        _weak = new RabinKarpSum();
        _inBlock = 0;
    }

    /// <summary>The content hash of a byte array (tests, small content).</summary>
    public static byte[] Of(ReadOnlySpan<byte> content)
    {
        var hasher = new ContentHasher(content.Length);
        hasher.Update(content);
        return hasher.Finish()!;
    }
}
