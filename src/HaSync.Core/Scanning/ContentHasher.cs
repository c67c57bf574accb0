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
    private readonly int _groupLength; // the blocks hashed side by side (see Blake2b.Hash4), or one block
    private readonly Signature? _signature;
    private Blake2b _outer = new();
    private byte[]? _staged;            // the start of the next group, until the rest of it arrives
    private int _stagedLength;
    private long _total;
    private readonly bool _weakSums;    // the blocks' weak sums are wanted (a signature, here or in the whole a part joins)
    private readonly byte[]? _partDigests; // a part's block digests, and their weak sums, until it joins the whole
    private readonly uint[]? _partWeakSums;
    private int _partBlocks;

    /// <summary>Starts hashing content announced as <paramref name="length"/> bytes.</summary>
    /// <param name="length">The content's length: it sets the block length and is part of the hash.</param>
    /// <param name="collectSignature">Also build the content's librsync signature (sync block length, full strong sums).</param>
    public ContentHasher(long length, bool collectSignature = false)
    {
        _length = length;
        var parameters = SignatureParameters.Choose(length, blockLength: SignatureParameters.SyncBlockLength(length));
        _blockLength = parameters.BlockLength;
        _groupLength = (Blake2b.HashesFourAtOnce ? 4 : 1) * _blockLength;
        if (collectSignature)
            _signature = new Signature(parameters, (int)Math.Min(length / _blockLength + 1, 1 << 24));
        _weakSums = collectSignature;
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(header, length);
        _outer.Update(header);
    }

    private ContentHasher(ContentHasher whole, long length)
    {
        _length = length;
        _blockLength = whole._blockLength;
        _groupLength = whole._groupLength;
        _weakSums = whole._weakSums;
        int blocks = (int)(length / _blockLength + 1);
        _partDigests = new byte[blocks * Blake2b.HashLength];
        _partWeakSums = _weakSums ? new uint[blocks] : null;
    }

    /// <summary>A hasher for the <paramref name="length"/> bytes of the content from <paramref name="offset"/> on (a block
    /// boundary, see <see cref="BlockBoundaryNear"/>), to be hashed meanwhile elsewhere and then given to <see cref="Join"/>,
    /// once this one has hashed everything before <paramref name="offset"/>.</summary>
    public ContentHasher Part(long offset, long length) =>
        offset % _blockLength == 0 ? new ContentHasher(this, length) : throw new ArgumentException("a part starts at a block boundary", nameof(offset));

    /// <summary>The block boundary at or below <paramref name="offset"/>.</summary>
    public long BlockBoundaryNear(long offset) => offset / _blockLength * _blockLength;

    /// <summary>Adds a part's blocks after those hashed here, as if its content had been given to <see cref="Update"/>.</summary>
    public void Join(ContentHasher part)
    {
        HashBlocks(_staged.AsSpan(0, _stagedLength));
        _stagedLength = 0;
        part.HashBlocks(part._staged.AsSpan(0, part._stagedLength));
        part._stagedLength = 0;
        for (int i = 0; i < part._partBlocks; i++)
            Record(part._partWeakSums?[i] ?? 0, part._partDigests.AsSpan(i * Blake2b.HashLength, Blake2b.HashLength));
        _total += part._total;
    }

    /// <summary>Bytes hashed so far.</summary>
    public long Total => _total;

    /// <summary>Adds content. Whole groups of blocks are hashed where they lie; only a group cut between two calls is
    /// copied aside (and a content's last data, if it ends the announced length, is hashed where it lies too).</summary>
    public void Update(ReadOnlySpan<byte> data)
    {
        _total += data.Length;
        if (_stagedLength > 0)
        {
            int take = Math.Min(_groupLength - _stagedLength, data.Length);
            data[..take].CopyTo(_staged.AsSpan(_stagedLength));
            _stagedLength += take;
            data = data[take..];
            if (_stagedLength < _groupLength)
                return;
            HashGroup(_staged.AsSpan(0, _groupLength));
            _stagedLength = 0;
        }
        while (data.Length >= _groupLength)
        {
            HashGroup(data[.._groupLength]);
            data = data[_groupLength..];
        }
        if (data.IsEmpty)
            return;
        if (_total == _length)
            HashBlocks(data); // the end of the content: nothing will complete the group
        else
        {
            _staged ??= new byte[_groupLength];
            data.CopyTo(_staged);
            _stagedLength = data.Length;
        }
    }

    /// <summary>The length of the blocks the hash is made of.</summary>
    public int BlockLength => _blockLength;

    /// <summary>Adds whole blocks whose digests are already known, as if their content had been given to
    /// <see cref="Update"/>; they start on a block boundary. (The agent's patch: blocks copied from a basis whose exact
    /// version it hashed a moment before.)</summary>
    public void AddKnownBlocks(ReadOnlySpan<byte> digests)
    {
        if (_total % _blockLength != 0 || _weakSums || _partDigests is not null || digests.Length % Blake2b.HashLength != 0)
            throw new InvalidOperationException("known blocks start on a block boundary of a content hash without signature");
        HashBlocks(_staged.AsSpan(0, _stagedLength)); // whole blocks waiting for the rest of their group
        _stagedLength = 0;
        for (int offset = 0; offset < digests.Length; offset += Blake2b.HashLength)
            Record(0, digests.Slice(offset, Blake2b.HashLength));
        _total += (long)digests.Length / Blake2b.HashLength * _blockLength;
    }

    /// <summary>The content hash; null when the content was not as long as announced (the hash would not be comparable).</summary>
    public byte[]? Finish()
    {
        HashBlocks(_staged.AsSpan(0, _stagedLength));
        _stagedLength = 0;
        var digest = new byte[Blake2b.HashLength];
        _outer.Finish(digest);
        return _total == _length ? digest : null;
    }

    /// <summary>The content's signature, when collected and the content was as long as announced.</summary>
    public Signature? Signature => _total == _length ? _signature : null;

    private void HashGroup(ReadOnlySpan<byte> group)
    {
        if (group.Length == _blockLength)
        {
            HashBlocks(group);
            return;
        }
        Span<byte> digests = stackalloc byte[4 * Blake2b.HashLength];
        Blake2b.Hash4(group, _blockLength, digests);
        for (int i = 0; i < 4; i++)
            Add(group.Slice(i * _blockLength, _blockLength), digests.Slice(i * Blake2b.HashLength, Blake2b.HashLength));
    }

    /// <summary>Hashes <paramref name="data"/> block by block (its last block may be short: the content's last).</summary>
    private void HashBlocks(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[Blake2b.HashLength];
        for (int offset = 0; offset < data.Length; offset += _blockLength)
        {
            var block = data.Slice(offset, Math.Min(_blockLength, data.Length - offset));
            Blake2b.Hash(block, digest);
            Add(block, digest);
        }
    }

    private void Add(ReadOnlySpan<byte> block, ReadOnlySpan<byte> digest)
    {
        uint weakSum = 0;
        if (_weakSums)
        {
            var weak = new RabinKarpSum();
            weak.Update(block);
            weakSum = weak.Digest;
        }
        Record(weakSum, digest);
    }

    private void Record(uint weakSum, ReadOnlySpan<byte> digest)
    {
        if (_partDigests is not null)
        {
            digest.CopyTo(_partDigests.AsSpan(_partBlocks * Blake2b.HashLength));
            if (_partWeakSums is not null)
                _partWeakSums[_partBlocks] = weakSum;
            _partBlocks++;
            return;
        }
        _outer.Update(digest);
        _signature?.Add(weakSum, digest);
    }

    /// <summary>The content hash of a byte array (tests, small content).</summary>
    public static byte[] Of(ReadOnlySpan<byte> content)
    {
        var hasher = new ContentHasher(content.Length);
        hasher.Update(content);
        return hasher.Finish()!;
    }
}
