using System.Buffers;

namespace HaSync.Delta;

/// <summary>
/// Computes a librsync delta from a signature of the basis and the new data, byte-identical to rdiff 2.3's.
/// </summary>
/// <remarks>
/// Implementation notes: the decisions follow librsync's delta.c exactly, because identical bytes are the
/// test of compatibility. A window of one block slides over the new data; where its weak sum and then its
/// strong sum match a block, that block is copied and the window jumps past it, else one byte becomes
/// literal and the window rolls on. Adjacent copies merge; a literal run is cut at 32 KiB; near the end
/// the window shrinks a byte at a time so the basis' short last block can still match. With an empty
/// signature rdiff sends the data as literals of one block each, and so do we.
/// Memory is bounded by the block length: the buffer holds the pending literal (at most 32 KiB), the
/// window, and one read ahead.
/// </remarks>
public static class DeltaEncoder
{
    internal const int MaxLiteralRun = 32768; // librsync's max_miss: literal runs are cut here

    /// <summary>Writes the delta that turns the signature's basis into <paramref name="newData"/>.</summary>
    /// <param name="signature">The basis's signature.</param>
    /// <param name="newData">The new content.</param>
    /// <param name="output">Where the delta goes.</param>
    /// <param name="own">The new content's own signature, when a hash pass over it already computed one (the compare): a
    /// window that is one of its blocks takes that block's strong sum instead of hashing it again. The strong sums found
    /// so are those of the content when it was hashed; if it changed since, the delta may not rebuild it, which the
    /// receiver's check of the whole file's hash catches, as it catches any false match.</param>
    /// <param name="cancellationToken">Observed between reads.</param>
    public static DeltaStats Encode(Signature signature, Stream newData, Stream output, Signature? own = null, CancellationToken cancellationToken = default)
    {
        var writer = new DeltaWriter(output);
        if (signature.Count == 0)
        {
            EncodeLiteralOnly(signature.Parameters.BlockLength, newData, writer, cancellationToken);
        }
        else
        {
            int blockLength = signature.Parameters.BlockLength;
            byte[] buffer = ArrayPool<byte>.Shared.Rent(MaxLiteralRun + blockLength + 1 + Math.Max(blockLength, 1 << 20));
            try
            {
                bool ownFits = own is not null && own.Parameters.BlockLength == blockLength
                    && own.Parameters.StrongLength >= signature.Parameters.StrongLength && own.Parameters.Magic.UsesBlake2() == signature.Parameters.Magic.UsesBlake2();
                if (signature.Parameters.Magic.UsesRabinKarp())
                    new Scanner<RabinKarpSum>(signature, ownFits ? own : null, newData, writer, buffer, cancellationToken).Run();
                else
                    new Scanner<Rollsum>(signature, ownFits ? own : null, newData, writer, buffer, cancellationToken).Run();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        writer.End();
        return writer.Stats;
    }

    private static void EncodeLiteralOnly(int chunkLength, Stream newData, DeltaWriter writer, CancellationToken cancellationToken)
    {
        byte[] chunk = new byte[chunkLength];
        int read;
        do
        {
            cancellationToken.ThrowIfCancellationRequested();
            read = newData.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false);
            if (read > 0)
                writer.Literal(chunk.AsSpan(0, read));
        } while (read == chunk.Length);
    }

    private sealed class Scanner<TSum> where TSum : struct, IRollingSum
    {
        private readonly Signature _signature;
        private readonly BlockIndex _index;
        private readonly Stream _input;
        private readonly DeltaWriter _writer;
        private readonly CancellationToken _cancellationToken;
        private readonly int _blockLength;
        private readonly bool _blake2;
        private readonly Signature? _own; // the new content's own blocks, when already hashed
        private readonly bool _ownWeakFits; // and their weak sums are of the signature's kind
        private readonly byte[] _buffer;
        private long _base;        // offset in the new content of _buffer[0]
        private bool _ended;       // the input is all in _buffer
        private int _literalStart; // start of the pending literal run in _buffer
        private int _position;     // start of the window in _buffer
        private int _end;          // end of valid data in _buffer
        private long _copyPosition, _copyLength; // pending copy; never pending together with a literal
        private TSum _sum;

        public Scanner(Signature signature, Signature? own, Stream input, DeltaWriter writer, byte[] buffer, CancellationToken cancellationToken)
        {
            _signature = signature;
            _own = own;
            _ownWeakFits = own is not null && own.Parameters.Magic.UsesRabinKarp() == signature.Parameters.Magic.UsesRabinKarp();
            _index = signature.Index;
            _input = input;
            _writer = writer;
            _cancellationToken = cancellationToken;
            _blockLength = signature.Parameters.BlockLength;
            _blake2 = signature.Parameters.Magic.UsesBlake2();
            _buffer = buffer; // holds the pending literal (<= MaxLiteralRun), the window and its next byte, and a read ahead
            _sum = new TSum();
            _sum.Reset();
        }

        public void Run()
        {
            int blockLength = _blockLength;
            // Scan: a whole block plus the byte that rolls in next must be at hand.
            while (true)
            {
                if (_end - _position <= blockLength)
                {
                    if (!Fill())
                        break;
                    continue;
                }
                if (_sum.Count == 0 && OwnBlockMatch(blockLength) is { } known)
                {
                    AppendMatch(known, blockLength);
                    continue;
                }
                if (_sum.Count == 0)
                    _sum.Update(_buffer.AsSpan(_position, blockLength));
                if (TryMatch(blockLength, out long match))
                {
                    AppendMatch(match, blockLength);
                    continue;
                }
                SkipMisses();
            }
            // Flush: the input has ended; the window shrinks as it nears the end.
            while (_position < _end)
            {
                if (_sum.Count == 0)
                    _sum.Update(_buffer.AsSpan(_position, Math.Min(blockLength, _end - _position)));
                int length = _sum.Count;
                if (TryMatch(length, out long match))
                {
                    AppendMatch(match, length);
                    continue;
                }
                _sum.RollOut(_buffer[_position]);
                AppendMiss();
                _position++;
            }
            Flush();
        }

        /// <summary>Rolls the window over non-matching bytes until a weak sum might match or the data runs out.
        /// This is the loop a completely different file spends its time in.</summary>
        private void SkipMisses()
        {
            byte[] buffer = _buffer;
            int blockLength = _blockLength;
            int limit = _end - blockLength; // the byte at position + blockLength must exist
            int position = _position;
            TSum sum = _sum;
            BlockIndex index = _index;
            do
            {
                if (_copyLength > 0 || position - _literalStart >= MaxLiteralRun)
                {
                    _position = position;
                    Flush();
                }
                sum.Rotate(buffer[position], buffer[position + blockLength]);
                position++;
            } while (position < limit && !index.MayContain(sum.Digest));
            _position = position;
            _sum = sum;
        }

        private void AppendMiss()
        {
            if (_copyLength > 0 || _position - _literalStart >= MaxLiteralRun)
                Flush();
        }

        private bool TryMatch(int length, out long match)
        {
            match = -1;
            uint weak = _sum.Digest;
            if (!_index.MayContain(weak) || !_index.HasWeak(weak))
                return false;
            Span<byte> strong = stackalloc byte[Blake2b.HashLength];
            if (OwnBlock(length) is { } known)
                _own!.StrongSum(known)[.._signature.Parameters.StrongLength].CopyTo(strong);
            else
                StrongSum.Compute(_blake2, _buffer.AsSpan(_position, length), strong);
            int block = _index.Find(weak, strong);
            if (block < 0)
                return false;
            match = (long)block * _blockLength;
            return true;
        }

        /// <summary>Where the basis has the block the window starts, when the window (just after a match, or at the start) is
        /// one of the new content's own blocks: found by that block's sums, so an unchanged block is passed over without its
        /// bytes being summed again (a large file with a few edits is mostly such blocks).</summary>
        private long? OwnBlockMatch(int length)
        {
            if (!_ownWeakFits || OwnBlock(length) is not { } known)
                return null;
            uint weak = _own!.WeakSum(known);
            if (!_index.MayContain(weak))
                return null;
            int block = _index.Find(weak, _own.StrongSum(known)[.._signature.Parameters.StrongLength]);
            return block < 0 ? null : (long)block * _blockLength;
        }

        /// <summary>Which of the new content's own blocks the window of <paramref name="length"/> bytes is, if it is one: it
        /// starts on a block boundary and is a whole block, or the short last one (it ends where the content ends).</summary>
        private int? OwnBlock(int length)
        {
            if (_own is null)
                return null;
            long offset = _base + _position;
            if (offset % _blockLength != 0 || offset / _blockLength >= _own.Count)
                return null;
            return length == _blockLength || (_ended && _position + length == _end) ? (int)(offset / _blockLength) : null;
        }

        private void AppendMatch(long match, int length)
        {
            if (_copyLength > 0 && _copyPosition + _copyLength == match)
            {
                _copyLength += length;
            }
            else
            {
                Flush();
                _copyPosition = match;
                _copyLength = length;
            }
            _position += length;
            _literalStart = _position;
            _sum.Reset();
        }

        private void Flush()
        {
            if (_copyLength > 0)
            {
                _writer.Copy(_copyPosition, _copyLength);
                _copyLength = 0;
            }
            else if (_position > _literalStart)
            {
                _writer.Literal(_buffer.AsSpan(_literalStart, _position - _literalStart));
            }
            _literalStart = _position;
        }

        /// <summary>Moves the pending literal and the window to the front of the buffer and reads more.
        /// Returns false at the end of the input.</summary>
        private bool Fill()
        {
            _cancellationToken.ThrowIfCancellationRequested();
            int keep = _end - _literalStart;
            Buffer.BlockCopy(_buffer, _literalStart, _buffer, 0, keep);
            _base += _literalStart;
            _position -= _literalStart;
            _end = keep;
            _literalStart = 0;
            int read = _input.ReadAtLeast(_buffer.AsSpan(_end), _buffer.Length - _end, throwOnEndOfStream: false);
            _end += read;
            _ended = read == 0;
            return read > 0;
        }
    }
}
