using System.Buffers;
using System.Buffers.Binary;

namespace HaSync.Delta;

/// <summary>Computes a librsync signature of a basis, streaming: memory is a read buffer, whatever the size.</summary>
public static class SignatureGenerator
{
    /// <summary>Writes the signature of <paramref name="basis"/> to <paramref name="output"/> and returns the number of blocks.</summary>
    public static long Generate(Stream basis, Stream output, SignatureParameters parameters, CancellationToken cancellationToken = default)
    {
        int blockLength = parameters.BlockLength;
        Span<byte> header = stackalloc byte[SignatureFormat.HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)parameters.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)blockLength);
        BinaryPrimitives.WriteUInt32BigEndian(header[8..], (uint)parameters.StrongLength);
        output.Write(header);

        int blocksPerRead = Math.Max(1, (1 << 20) / blockLength);
        int inputLength = blocksPerRead * blockLength;
        byte[] input = ArrayPool<byte>.Shared.Rent(inputLength);
        try
        {
            return WriteEntries(basis, output, parameters, input.AsSpan(0, inputLength), blocksPerRead, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(input);
        }
    }

    private static long WriteEntries(Stream basis, Stream output, SignatureParameters parameters, Span<byte> input,
        int blocksPerRead, CancellationToken cancellationToken)
    {
        int blockLength = parameters.BlockLength, strongLength = parameters.StrongLength;
        bool rabinKarp = parameters.Magic.UsesRabinKarp(), blake2 = parameters.Magic.UsesBlake2();
        int entryLength = 4 + strongLength;
        byte[] entries = new byte[blocksPerRead * entryLength];
        Span<byte> strong = stackalloc byte[4 * Blake2b.HashLength];
        long blocks = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int read = basis.ReadAtLeast(input, input.Length, throwOnEndOfStream: false);
            int written = 0;
            for (int offset = 0; offset < read;)
            {
                // Four whole blocks' BLAKE2b sums at once where there are four (see Blake2b.Hash4), else one.
                int count = blake2 && Blake2b.HashesFourAtOnce && read - offset >= 4 * blockLength ? 4 : 1;
                if (count == 4)
                    Blake2b.Hash4(input.Slice(offset, 4 * blockLength), blockLength, strong);
                else
                    StrongSum.Compute(blake2, input.Slice(offset, Math.Min(blockLength, read - offset)), strong[..Blake2b.HashLength]);
                for (int i = 0; i < count; i++, blocks++)
                {
                    var block = input.Slice(offset, Math.Min(blockLength, read - offset));
                    var entry = entries.AsSpan(written, entryLength);
                    BinaryPrimitives.WriteUInt32BigEndian(entry, WeakSum(rabinKarp, block));
                    strong.Slice(i * Blake2b.HashLength, strongLength).CopyTo(entry[4..]);
                    written += entryLength;
                    offset += block.Length;
                }
            }
            output.Write(entries, 0, written);
            if (read < input.Length)
                break;
        }
        output.Flush();
        return blocks;
    }

    internal static uint WeakSum(bool rabinKarp, ReadOnlySpan<byte> block)
    {
        if (rabinKarp)
        {
            var sum = new RabinKarpSum();
            sum.Update(block);
            return sum.Digest;
        }
        var rollsum = new Rollsum();
        rollsum.Update(block);
        return rollsum.Digest;
    }
}
