using System.Buffers.Binary;

namespace HaSync.Delta;

/// <summary>
/// A loaded librsync signature: the weak and strong sum of each block of the basis, in order.
/// Memory is about (4 + strong length) bytes per block, plus the lookup index built for deltas.
/// </summary>
public sealed class Signature
{
    private uint[] _weak;
    private byte[] _strong;
    private BlockIndex? _index;

    internal Signature(SignatureParameters parameters, int capacity = 16)
    {
        Parameters = parameters;
        _weak = new uint[Math.Max(capacity, 1)];
        _strong = new byte[_weak.Length * parameters.StrongLength];
    }

    /// <summary>Magic, block length and strong length.</summary>
    public SignatureParameters Parameters { get; }

    /// <summary>Number of blocks.</summary>
    public int Count { get; private set; }

    internal uint WeakSum(int block) => _weak[block];

    internal ReadOnlySpan<byte> StrongSum(int block) => StrongSums(block, 1);

    /// <summary>The strong sums of <paramref name="count"/> blocks from <paramref name="first"/> on, one after the other.</summary>
    internal ReadOnlySpan<byte> StrongSums(int first, int count) =>
        _strong.AsSpan(first * Parameters.StrongLength, count * Parameters.StrongLength);

    internal BlockIndex Index => _index ??= new BlockIndex(this);

    internal void Add(uint weak, ReadOnlySpan<byte> strong)
    {
        if (Count == _weak.Length)
        {
            Array.Resize(ref _weak, _weak.Length * 2);
            Array.Resize(ref _strong, _weak.Length * Parameters.StrongLength);
        }
        _weak[Count] = weak;
        strong.CopyTo(_strong.AsSpan(Count * Parameters.StrongLength));
        Count++;
        _index = null;
    }

    /// <summary>Writes the signature in librsync's format (as <c>rdiff signature</c> would), with strong sums cut to
    /// <paramref name="strongLength"/> bytes when given (a prefix of a strong sum is the shorter strong sum).</summary>
    public void WriteTo(Stream output, int? strongLength = null)
    {
        int strong = Math.Min(strongLength ?? Parameters.StrongLength, Parameters.StrongLength);
        Span<byte> header = stackalloc byte[SignatureFormat.HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)Parameters.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)Parameters.BlockLength);
        BinaryPrimitives.WriteUInt32BigEndian(header[8..], (uint)strong);
        output.Write(header);
        Span<byte> weak = stackalloc byte[4];
        for (int block = 0; block < Count; block++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(weak, _weak[block]);
            output.Write(weak);
            output.Write(StrongSum(block)[..strong]);
        }
    }

    /// <summary>A copy whose strong sums are cut to <paramref name="strongLength"/> bytes (a prefix of a strong sum is the shorter
    /// strong sum): what a delta against a signature of that strong length needs, in less memory.</summary>
    public Signature Truncated(int strongLength)
    {
        int strong = Math.Min(strongLength, Parameters.StrongLength);
        var copy = new Signature(Parameters with { StrongLength = strong }, Count);
        for (int block = 0; block < Count; block++)
            copy.Add(_weak[block], StrongSum(block)[..strong]);
        return copy;
    }

    /// <summary>Bytes of the serialised signature with <paramref name="strongLength"/>-byte strong sums.</summary>
    public long SerializedLength(int strongLength) => SignatureFormat.HeaderLength + (long)Count * (4 + strongLength);

    /// <summary>Reads a signature in any of the four librsync formats.</summary>
    /// <exception cref="DeltaFormatException">Bad magic, impossible lengths, or a truncated block entry.</exception>
    public static Signature Read(Stream input, CancellationToken cancellationToken = default)
    {
        Span<byte> header = stackalloc byte[SignatureFormat.HeaderLength];
        int got = input.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (got < header.Length)
            throw new DeltaFormatException($"signature: truncated header at byte {got} (a signature starts with 12 bytes: magic, block length, strong sum length)");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        uint blockLength = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        uint strongLength = BinaryPrimitives.ReadUInt32BigEndian(header[8..]);
        if (!SignatureFormat.IsKnown(magic))
            throw new DeltaFormatException(magic == SignatureFormat.DeltaMagic
                ? "signature: bad magic 0x72730236 at byte 0: this is a delta, not a signature"
                : $"signature: bad magic 0x{magic:x8} at byte 0 (expected one of 0x72730136, 0x72730137, 0x72730146, 0x72730147)");
        var kind = (SignatureMagic)magic;
        if (blockLength < 1 || blockLength > SignatureFormat.MaxBlockLength)
            throw new DeltaFormatException($"signature: block length {blockLength} at byte 4 is outside 1..{SignatureFormat.MaxBlockLength}");
        if (strongLength < 1 || strongLength > kind.MaxStrongLength())
            throw new DeltaFormatException($"signature: strong sum length {strongLength} at byte 8 is outside 1..{kind.MaxStrongLength()} for magic 0x{magic:x8}");

        var parameters = new SignatureParameters(kind, (int)blockLength, (int)strongLength);
        int entryLength = 4 + parameters.StrongLength;
        int capacity = input.CanSeek ? (int)Math.Clamp((input.Length - input.Position) / entryLength, 1, 1 << 24) : 16;
        var signature = new Signature(parameters, capacity);

        byte[] buffer = new byte[entryLength * 4096];
        long offset = SignatureFormat.HeaderLength;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int read = input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            int entries = read / entryLength;
            for (int i = 0; i < entries; i++)
            {
                var entry = buffer.AsSpan(i * entryLength, entryLength);
                signature.Add(BinaryPrimitives.ReadUInt32BigEndian(entry), entry[4..]);
            }
            if (read % entryLength != 0)
                throw new DeltaFormatException($"signature: truncated block entry at byte {offset + (long)entries * entryLength} (block {signature.Count}: {read % entryLength} of {entryLength} bytes)");
            offset += read;
            if (read < buffer.Length)
                return signature;
        }
    }
}
