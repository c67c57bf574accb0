using System.Buffers;
using System.Buffers.Binary;

namespace HaSync.Delta;

/// <summary>
/// Applies a librsync delta to a basis. Every command is checked before it acts: a reserved opcode,
/// a truncated command or literal, a copy outside the basis, a negative or overflowing length, an output
/// beyond the allowed size, or data after END is a <see cref="DeltaFormatException"/> naming the byte
/// offset in the delta. Memory is one copy buffer whatever the sizes.
/// </summary>
public static class DeltaPatcher
{
    /// <summary>Writes the result of applying <paramref name="delta"/> to <paramref name="basis"/> into <paramref name="output"/>.</summary>
    /// <param name="basis">The old file; seekable, because COPY commands read it at any offset.</param>
    /// <param name="delta">The delta, read once from its current position.</param>
    /// <param name="output">Receives the new file.</param>
    /// <param name="maxOutputLength">The output may not grow beyond this (a guard against delta bombs).</param>
    /// <param name="cancellationToken">Observed between commands and during long copies.</param>
    public static DeltaStats Apply(Stream basis, Stream delta, Stream output, long maxOutputLength = long.MaxValue,
        CancellationToken cancellationToken = default)
    {
        if (!basis.CanSeek)
            throw new ArgumentException("the basis must be seekable: COPY commands read it at any offset", nameof(basis));
        var reader = new DeltaReader(delta);
        var stats = new DeltaStats();
        Span<byte> header = stackalloc byte[4];
        if (!reader.TryRead(header))
            throw new DeltaFormatException($"delta: truncated header: {reader.Offset} of 4 bytes of magic");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (magic != SignatureFormat.DeltaMagic)
            throw new DeltaFormatException(SignatureFormat.IsKnown(magic)
                ? $"delta: bad magic 0x{magic:x8} at byte 0: this is a signature, not a delta"
                : $"delta: bad magic 0x{magic:x8} at byte 0 (expected 0x72730236)");

        byte[] copyBuffer = ArrayPool<byte>.Shared.Rent(1 << 20); // 64 KiB chunks cost a fifth of a 200 MB patch in syscalls
        try
        {
            Run(reader, basis, output, copyBuffer, stats, maxOutputLength, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copyBuffer);
        }
        output.Flush();
        stats.DeltaLength = reader.Offset;
        return stats;
    }

    private static void Run(DeltaReader reader, Stream basis, Stream output, byte[] copyBuffer, DeltaStats stats,
        long maxOutputLength, CancellationToken cancellationToken)
    {
        long basisLength = basis.Length;
        long outputLength = 0;
        Span<byte> operand = stackalloc byte[8];
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long commandOffset = reader.Offset;
            int opcode = reader.ReadByte();
            if (opcode < 0)
                throw new DeltaFormatException($"delta: truncated at byte {commandOffset}: expected a command or END");
            if (opcode == DeltaOpcodes.End)
                break;
            if (opcode > DeltaOpcodes.LastCopy)
                throw new DeltaFormatException($"delta: reserved opcode 0x{opcode:x2} at byte {commandOffset}");

            if (opcode < DeltaOpcodes.CopyN1N1)
            {
                long length = opcode <= DeltaOpcodes.LiteralInlineMax
                    ? opcode
                    : ReadOperand(reader, operand, DeltaOpcodes.Width(opcode - DeltaOpcodes.LiteralN1), "literal length", commandOffset);
                CheckGrowth(ref outputLength, length, maxOutputLength, "literal", commandOffset);
                long left = length;
                while (left > 0)
                {
                    int chunk = (int)Math.Min(left, copyBuffer.Length);
                    int got = reader.ReadUpTo(copyBuffer.AsSpan(0, chunk));
                    if (got < chunk)
                        throw new DeltaFormatException($"delta: truncated literal at byte {commandOffset}: {length - left + got} of {length} bytes present");
                    output.Write(copyBuffer, 0, chunk);
                    left -= chunk;
                }
                stats.LiteralBytes += length;
                stats.LiteralCommands++;
            }
            else
            {
                int widths = opcode - DeltaOpcodes.CopyN1N1;
                long position = ReadOperand(reader, operand, DeltaOpcodes.Width(widths / 4), "copy position", commandOffset);
                long length = ReadOperand(reader, operand, DeltaOpcodes.Width(widths % 4), "copy length", commandOffset);
                if (position > basisLength || length > basisLength - position)
                    throw new DeltaFormatException($"delta: COPY at byte {commandOffset} reads basis bytes {position}..{position + length} but the basis has {basisLength} bytes");
                CheckGrowth(ref outputLength, length, maxOutputLength, "copy", commandOffset);
                basis.Seek(position, SeekOrigin.Begin);
                (output as ICopyAwareOutput)?.CopyFollows(position);
                long left = length;
                while (left > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int chunk = (int)Math.Min(left, copyBuffer.Length);
                    int got = basis.ReadAtLeast(copyBuffer.AsSpan(0, chunk), chunk, throwOnEndOfStream: false);
                    if (got < chunk)
                        throw new DeltaFormatException($"delta: COPY at byte {commandOffset} reads beyond the end of the basis at basis byte {position + length - left + got}");
                    output.Write(copyBuffer, 0, chunk);
                    left -= chunk;
                }
                (output as ICopyAwareOutput)?.CopyFollows(-1);
                stats.CopiedBytes += length;
                stats.CopyCommands++;
            }
        }
        if (reader.ReadByte() >= 0)
            throw new DeltaFormatException($"delta: data after END at byte {reader.Offset - 1}");
    }

    private static long ReadOperand(DeltaReader reader, Span<byte> operand, int width, string what, long commandOffset)
    {
        if (!reader.TryRead(operand[..width]))
            throw new DeltaFormatException($"delta: truncated {what} of the command at byte {commandOffset}");
        long value = DeltaOpcodes.ReadInt(operand, width);
        if (value < 0)
            throw new DeltaFormatException($"delta: absurd {what} {(ulong)value} in the command at byte {commandOffset}");
        return value;
    }

    private static void CheckGrowth(ref long outputLength, long length, long maxOutputLength, string what, long commandOffset)
    {
        if (length > maxOutputLength - outputLength)
            throw new DeltaFormatException($"delta: {what} of {length} bytes at byte {commandOffset} would make the output longer than the allowed {maxOutputLength} bytes");
        outputLength += length;
    }

    /// <summary>A buffered reader that counts its offset, for error messages.</summary>
    private sealed class DeltaReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[1 << 16];
        private int _next, _end;

        public long Offset { get; private set; }

        public int ReadByte()
        {
            if (_next == _end && !Refill())
                return -1;
            Offset++;
            return _buffer[_next++];
        }

        public bool TryRead(Span<byte> destination) => ReadUpTo(destination) == destination.Length;

        public int ReadUpTo(Span<byte> destination)
        {
            int done = 0;
            while (done < destination.Length)
            {
                if (_next == _end)
                {
                    if (destination.Length - done >= _buffer.Length)
                    {
                        int direct = stream.Read(destination[done..]); // large literals bypass the buffer
                        if (direct == 0)
                            break;
                        done += direct;
                        Offset += direct;
                        continue;
                    }
                    if (!Refill())
                        break;
                }
                int take = Math.Min(_end - _next, destination.Length - done);
                _buffer.AsSpan(_next, take).CopyTo(destination[done..]);
                _next += take;
                done += take;
                Offset += take;
            }
            return done;
        }

        private bool Refill()
        {
            _next = 0;
            _end = stream.Read(_buffer, 0, _buffer.Length);
            return _end > 0;
        }
    }
}

/// <summary>An output that is told which of the bytes it is given are copies of the basis, and from where.</summary>
internal interface ICopyAwareOutput
{
    /// <summary>The bytes written next are the basis's from <paramref name="basisPosition"/> on, until -1.</summary>
    void CopyFollows(long basisPosition);
}
