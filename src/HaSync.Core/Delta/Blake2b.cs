using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HaSync.Delta;

/// <summary>
/// BLAKE2b (RFC 7693) with a 32-byte digest: unkeyed, librsync's strong sum and HaSync's whole-file hash; keyed, the
/// agent's journal fingerprints (a MAC by design: no HMAC construction, no OpenSSL call per file).
/// </summary>
/// <remarks>
/// Implementation notes: with AVX2 the 4x4 working matrix is held as four row vectors, so one vector
/// step runs the G function on four columns (then, after rotating rows 2-4, on four diagonals) at once;
/// this is what lets the signature keep pace with rdiff's C. Without AVX2 the scalar compression keeps
/// the sixteen words in locals. Both read the message schedule through <see cref="Sigma"/>. BLAKE2b-256
/// is not a prefix of BLAKE2b-512 (the digest length is part of the parameter block), so the length is
/// fixed here rather than truncated from a longer hash.
/// </remarks>
public struct Blake2b
{
    /// <summary>Digest length in bytes.</summary>
    public const int HashLength = 32;
    private const int BlockLength = 128;

    private static ReadOnlySpan<ulong> IV =>
    [
        0x6a09e667f3bcc908UL, 0xbb67ae8584caa73bUL, 0x3c6ef372fe94f82bUL, 0xa54ff53a5f1d36f1UL,
        0x510e527fade682d1UL, 0x9b05688c2b3e6c1fUL, 0x1f83d9abfb41bd6bUL, 0x5be0cd19137e2179UL,
    ];

    private static ReadOnlySpan<byte> Sigma =>
    [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
        11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
        7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
        9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
        2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
        12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
        13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
        6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
        10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
    ];

    [InlineArray(8)]
    private struct ChainValue { private ulong _h; }

    [InlineArray(BlockLength)]
    private struct BlockBuffer { private byte _b; }

    private ChainValue _h;       // chaining value
    private BlockBuffer _buffer; // the last, possibly full, block: it may turn out to be the final one
    private int _buffered;
    private ulong _length;       // bytes hashed so far (the 128-bit counter's low half; 16 EiB is out of reach)

    /// <summary>Creates a hasher ready for <see cref="Update"/>.</summary>
    public Blake2b()
    {
        IV.CopyTo(_h);
        _h[0] ^= 0x01010000UL ^ HashLength;
    }

    /// <summary>Creates a keyed hasher (a MAC under <paramref name="key"/>, 1 to 64 bytes) ready for <see cref="Update"/>.</summary>
    public Blake2b(ReadOnlySpan<byte> key)
    {
        if (key.Length is 0 or > 64)
            throw new ArgumentException($"a BLAKE2b key is 1 to 64 bytes, not {key.Length}", nameof(key));
        IV.CopyTo(_h);
        _h[0] ^= 0x01010000UL ^ ((ulong)key.Length << 8) ^ HashLength;
        key.CopyTo(_buffer); // the key, zero-padded, is the first block (and the final one when no data follows)
        _buffered = BlockLength;
    }

    /// <summary>Hashes <paramref name="data"/> in one call and writes the first <c>destination.Length</c>
    /// (at most 32) bytes of the digest.</summary>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var hasher = new Blake2b();
        hasher.Update(data);
        hasher.Finish(destination);
    }

    /// <summary>Adds <paramref name="data"/> to the hash.</summary>
    public void Update(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
            return;
        if (_buffered > 0)
        {
            int take = Math.Min(BlockLength - _buffered, data.Length);
            data[..take].CopyTo(((Span<byte>)_buffer)[_buffered..]);
            _buffered += take;
            data = data[take..];
            if (data.IsEmpty)
                return; // keep the full block: it is the final one if nothing follows
            _length += BlockLength;
            Compress(ref _h, _buffer, _length, final: false);
            _buffered = 0;
        }
        while (data.Length > BlockLength)
        {
            _length += BlockLength;
            Compress(ref _h, data[..BlockLength], _length, final: false);
            data = data[BlockLength..];
        }
        data.CopyTo(_buffer);
        _buffered = data.Length;
    }

    /// <summary>Finishes the hash and writes the first <c>destination.Length</c> (at most 32) bytes of the digest.</summary>
    public void Finish(Span<byte> destination)
    {
        if (destination.Length > HashLength)
            throw new ArgumentException($"BLAKE2b-256 gives at most {HashLength} bytes", nameof(destination));
        Span<byte> last = _buffer;
        last[_buffered..].Clear();
        _length += (ulong)_buffered;
        Compress(ref _h, last, _length, final: true);
        Span<byte> digest = stackalloc byte[HashLength];
        for (int i = 0; i < HashLength / 8; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(digest[(8 * i)..], _h[i]);
        digest[..destination.Length].CopyTo(destination);
    }

    /// <summary>Whether <see cref="Hash4"/> hashes its four messages side by side (AVX2), rather than one after another.</summary>
    public static bool HashesFourAtOnce => Avx2.IsSupported;

    /// <summary>Hashes four messages of <paramref name="length"/> bytes each, laid end to end in <paramref name="messages"/>,
    /// and writes their four 32-byte digests one after another into <paramref name="digests"/>: the same as four calls of
    /// <see cref="Hash"/>. With AVX2 each message takes one 64-bit lane of every vector, so the G function runs on four
    /// messages at once with no shuffling of the working matrix: about three times the speed of one message at a time,
    /// which is what lets the content hash of a file's blocks (each hashed on its own) keep pace with reading it.</summary>
    public static void Hash4(ReadOnlySpan<byte> messages, int length, Span<byte> digests)
    {
        if (messages.Length < 4 * length || digests.Length < 4 * HashLength)
            throw new ArgumentException("Hash4 takes four messages of the given length and room for four digests");
        if (!Avx2.IsSupported)
        {
            for (int lane = 0; lane < 4; lane++)
                Hash(messages.Slice(lane * length, length), digests.Slice(lane * HashLength, HashLength));
            return;
        }
        Span<Vector256<ulong>> h = stackalloc Vector256<ulong>[8];
        for (int i = 0; i < 8; i++)
            h[i] = Vector256.Create(IV[i]);
        h[0] ^= Vector256.Create(0x01010000UL ^ HashLength);
        Span<Vector256<ulong>> m = stackalloc Vector256<ulong>[16];
        Span<byte> last = stackalloc byte[4 * BlockLength]; // the messages' final partial blocks, zero-padded
        int blocks = Math.Max(1, (length + BlockLength - 1) / BlockLength);
        for (int block = 0; block < blocks; block++)
        {
            int start = block * BlockLength, take = Math.Min(BlockLength, length - start);
            if (take == BlockLength)
                LoadTransposed(messages[start..], length, m);
            else
            {
                last.Clear();
                for (int lane = 0; lane < 4; lane++)
                    messages.Slice(lane * length + start, take).CopyTo(last[(lane * BlockLength)..]);
                LoadTransposed(last, BlockLength, m);
            }
            bool final = block == blocks - 1;
            Compress4(h, m, final ? (ulong)length : (ulong)(start + BlockLength), final);
        }
        // Lane j of h[i] is word i of message j's chain value; its digest is words 0-3, little-endian.
        for (int lane = 0; lane < 4; lane++)
            for (int i = 0; i < HashLength / 8; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(digests[(lane * HashLength + 8 * i)..], h[i].GetElement(lane));
    }

    /// <summary>Message word i of four 128-byte blocks (the first at <paramref name="source"/>, the others every
    /// <paramref name="stride"/> bytes) into <c>m[i]</c>, lane by block: a 4x4 transpose of each four words.</summary>
    private static void LoadTransposed(ReadOnlySpan<byte> source, int stride, Span<Vector256<ulong>> m)
    {
        ref byte first = ref MemoryMarshal.GetReference(source);
        for (int q = 0; q < 16; q += 4)
        {
            var a = Vector256.LoadUnsafe(ref Unsafe.As<byte, ulong>(ref Unsafe.Add(ref first, 8 * q)));
            var b = Vector256.LoadUnsafe(ref Unsafe.As<byte, ulong>(ref Unsafe.Add(ref first, stride + 8 * q)));
            var c = Vector256.LoadUnsafe(ref Unsafe.As<byte, ulong>(ref Unsafe.Add(ref first, 2 * stride + 8 * q)));
            var d = Vector256.LoadUnsafe(ref Unsafe.As<byte, ulong>(ref Unsafe.Add(ref first, 3 * stride + 8 * q)));
            var ab0 = Avx2.UnpackLow(a, b);   // a0 b0 a2 b2
            var ab1 = Avx2.UnpackHigh(a, b);  // a1 b1 a3 b3
            var cd0 = Avx2.UnpackLow(c, d);
            var cd1 = Avx2.UnpackHigh(c, d);
            m[q] = Avx2.Permute2x128(ab0, cd0, 0x20);
            m[q + 1] = Avx2.Permute2x128(ab1, cd1, 0x20);
            m[q + 2] = Avx2.Permute2x128(ab0, cd0, 0x31);
            m[q + 3] = Avx2.Permute2x128(ab1, cd1, 0x31);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Compress4(Span<Vector256<ulong>> h, ReadOnlySpan<Vector256<ulong>> m, ulong counter, bool final)
    {
        var rotate24 = Vector256.Create((byte)3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);
        var rotate16 = Vector256.Create((byte)2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
        Vector256<ulong> v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        Vector256<ulong> v8 = Vector256.Create(IV[0]), v9 = Vector256.Create(IV[1]), v10 = Vector256.Create(IV[2]), v11 = Vector256.Create(IV[3]);
        Vector256<ulong> v12 = Vector256.Create(IV[4] ^ counter), v13 = Vector256.Create(IV[5]);
        Vector256<ulong> v14 = Vector256.Create(final ? ~IV[6] : IV[6]), v15 = Vector256.Create(IV[7]);

        ref Vector256<ulong> mw = ref MemoryMarshal.GetReference(m);
        ref byte s = ref MemoryMarshal.GetReference(Sigma);
        for (int round = 0; round < 12; round++, s = ref Unsafe.Add(ref s, 16))
        {
            G(ref v0, ref v4, ref v8, ref v12, Unsafe.Add(ref mw, s), Unsafe.Add(ref mw, Unsafe.Add(ref s, 1)), rotate24, rotate16);
            G(ref v1, ref v5, ref v9, ref v13, Unsafe.Add(ref mw, Unsafe.Add(ref s, 2)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 3)), rotate24, rotate16);
            G(ref v2, ref v6, ref v10, ref v14, Unsafe.Add(ref mw, Unsafe.Add(ref s, 4)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 5)), rotate24, rotate16);
            G(ref v3, ref v7, ref v11, ref v15, Unsafe.Add(ref mw, Unsafe.Add(ref s, 6)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 7)), rotate24, rotate16);
            G(ref v0, ref v5, ref v10, ref v15, Unsafe.Add(ref mw, Unsafe.Add(ref s, 8)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 9)), rotate24, rotate16);
            G(ref v1, ref v6, ref v11, ref v12, Unsafe.Add(ref mw, Unsafe.Add(ref s, 10)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 11)), rotate24, rotate16);
            G(ref v2, ref v7, ref v8, ref v13, Unsafe.Add(ref mw, Unsafe.Add(ref s, 12)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 13)), rotate24, rotate16);
            G(ref v3, ref v4, ref v9, ref v14, Unsafe.Add(ref mw, Unsafe.Add(ref s, 14)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 15)), rotate24, rotate16);
        }

        h[0] ^= v0 ^ v8; h[1] ^= v1 ^ v9; h[2] ^= v2 ^ v10; h[3] ^= v3 ^ v11;
        h[4] ^= v4 ^ v12; h[5] ^= v5 ^ v13; h[6] ^= v6 ^ v14; h[7] ^= v7 ^ v15;
    }

    private static void Compress(ref ChainValue h, ReadOnlySpan<byte> block, ulong counter, bool final)
    {
        Span<ulong> m = stackalloc ulong[16];
        if (BitConverter.IsLittleEndian)
            MemoryMarshal.Cast<byte, ulong>(block[..BlockLength]).CopyTo(m);
        else
            for (int i = 0; i < 16; i++)
                m[i] = BinaryPrimitives.ReadUInt64LittleEndian(block[(8 * i)..]);
        if (Avx2.IsSupported)
            CompressAvx2(h, m, counter, final);
        else
            CompressScalar(h, m, counter, final);
    }

    /// <summary>Test hook: the vector and scalar compressions must agree.</summary>
    internal static (ulong[] Vector, ulong[] Scalar) CompressBothWays(ReadOnlySpan<ulong> chain, ReadOnlySpan<ulong> message, ulong counter, bool final)
    {
        ChainValue a = default, b = default;
        chain.CopyTo(a);
        chain.CopyTo(b);
        if (Avx2.IsSupported)
            CompressAvx2(a, message, counter, final);
        else
            CompressScalar(a, message, counter, final);
        CompressScalar(b, message, counter, final);
        return (((ReadOnlySpan<ulong>)a).ToArray(), ((ReadOnlySpan<ulong>)b).ToArray());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CompressAvx2(Span<ulong> h, ReadOnlySpan<ulong> m, ulong counter, bool final)
    {
        var rotate24 = Vector256.Create((byte)3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);
        var rotate16 = Vector256.Create((byte)2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
        var row1 = Vector256.Create(h[0], h[1], h[2], h[3]);
        var row2 = Vector256.Create(h[4], h[5], h[6], h[7]);
        var row3 = Vector256.Create(IV[0], IV[1], IV[2], IV[3]);
        var row4 = Vector256.Create(IV[4] ^ counter, IV[5], final ? ~IV[6] : IV[6], IV[7]);
        var originalLow = row1;
        var originalHigh = row2;

        ref ulong mw = ref MemoryMarshal.GetReference(m);
        ref byte s = ref MemoryMarshal.GetReference(Sigma);
        for (int round = 0; round < 12; round++, s = ref Unsafe.Add(ref s, 16))
        {
            // Columns: G on (v0,v4,v8,v12) .. (v3,v7,v11,v15).
            var x = Vector256.Create(Unsafe.Add(ref mw, s), Unsafe.Add(ref mw, Unsafe.Add(ref s, 2)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 4)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 6)));
            var y = Vector256.Create(Unsafe.Add(ref mw, Unsafe.Add(ref s, 1)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 3)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 5)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 7)));
            G(ref row1, ref row2, ref row3, ref row4, x, y, rotate24, rotate16);
            // Diagonals: rotate rows 2, 3, 4 left by 1, 2, 3 lanes so the diagonals line up as columns.
            row2 = Avx2.Permute4x64(row2, 0x39);
            row3 = Avx2.Permute4x64(row3, 0x4E);
            row4 = Avx2.Permute4x64(row4, 0x93);
            x = Vector256.Create(Unsafe.Add(ref mw, Unsafe.Add(ref s, 8)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 10)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 12)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 14)));
            y = Vector256.Create(Unsafe.Add(ref mw, Unsafe.Add(ref s, 9)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 11)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 13)), Unsafe.Add(ref mw, Unsafe.Add(ref s, 15)));
            G(ref row1, ref row2, ref row3, ref row4, x, y, rotate24, rotate16);
            row2 = Avx2.Permute4x64(row2, 0x93);
            row3 = Avx2.Permute4x64(row3, 0x4E);
            row4 = Avx2.Permute4x64(row4, 0x39);
        }

        var low = originalLow ^ row1 ^ row3;
        var high = originalHigh ^ row2 ^ row4;
        low.CopyTo(h);
        high.CopyTo(h[4..]);
    }

    /// <summary>The G function, lane by lane: on four columns (or diagonals) of one message's matrix, or on one word of
    /// each of four messages' matrices.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void G(ref Vector256<ulong> a, ref Vector256<ulong> b, ref Vector256<ulong> c, ref Vector256<ulong> d,
        in Vector256<ulong> x, in Vector256<ulong> y, Vector256<byte> rotate24, Vector256<byte> rotate16)
    {
        // Every step updates its vector in place, so G needs one scratch register (for the last rotation): in Compress4 the
        // sixteen state vectors fill the sixteen AVX2 registers, and a second scratch one spilled them on every G.
        a += x;
        a += b;
        d = Avx2.Shuffle((d ^ a).AsUInt32(), 0xB1).AsUInt64();        // rotate right 32
        c += d;
        b = Avx2.Shuffle((b ^ c).AsByte(), rotate24).AsUInt64();       // rotate right 24
        a += y;
        a += b;
        d = Avx2.Shuffle((d ^ a).AsByte(), rotate16).AsUInt64();       // rotate right 16
        c += d;
        b ^= c;
        b = Avx2.ShiftRightLogical(b, 63) | (b + b);                   // rotate right 63
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CompressScalar(Span<ulong> h, ReadOnlySpan<ulong> m, ulong counter, bool final)
    {
        ulong v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        ulong v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3];
        ulong v12 = IV[4] ^ counter, v13 = IV[5], v14 = final ? ~IV[6] : IV[6], v15 = IV[7];

        ref ulong mw = ref MemoryMarshal.GetReference(m);
        ref byte s = ref MemoryMarshal.GetReference(Sigma);
        for (int round = 0; round < 12; round++, s = ref Unsafe.Add(ref s, 16))
        {
            // Columns.
            v0 += v4 + Unsafe.Add(ref mw, s); v12 = BitOperations.RotateRight(v12 ^ v0, 32); v8 += v12; v4 = BitOperations.RotateRight(v4 ^ v8, 24);
            v0 += v4 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 1)); v12 = BitOperations.RotateRight(v12 ^ v0, 16); v8 += v12; v4 = BitOperations.RotateRight(v4 ^ v8, 63);
            v1 += v5 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 2)); v13 = BitOperations.RotateRight(v13 ^ v1, 32); v9 += v13; v5 = BitOperations.RotateRight(v5 ^ v9, 24);
            v1 += v5 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 3)); v13 = BitOperations.RotateRight(v13 ^ v1, 16); v9 += v13; v5 = BitOperations.RotateRight(v5 ^ v9, 63);
            v2 += v6 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 4)); v14 = BitOperations.RotateRight(v14 ^ v2, 32); v10 += v14; v6 = BitOperations.RotateRight(v6 ^ v10, 24);
            v2 += v6 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 5)); v14 = BitOperations.RotateRight(v14 ^ v2, 16); v10 += v14; v6 = BitOperations.RotateRight(v6 ^ v10, 63);
            v3 += v7 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 6)); v15 = BitOperations.RotateRight(v15 ^ v3, 32); v11 += v15; v7 = BitOperations.RotateRight(v7 ^ v11, 24);
            v3 += v7 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 7)); v15 = BitOperations.RotateRight(v15 ^ v3, 16); v11 += v15; v7 = BitOperations.RotateRight(v7 ^ v11, 63);
            // Diagonals.
            v0 += v5 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 8)); v15 = BitOperations.RotateRight(v15 ^ v0, 32); v10 += v15; v5 = BitOperations.RotateRight(v5 ^ v10, 24);
            v0 += v5 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 9)); v15 = BitOperations.RotateRight(v15 ^ v0, 16); v10 += v15; v5 = BitOperations.RotateRight(v5 ^ v10, 63);
            v1 += v6 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 10)); v12 = BitOperations.RotateRight(v12 ^ v1, 32); v11 += v12; v6 = BitOperations.RotateRight(v6 ^ v11, 24);
            v1 += v6 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 11)); v12 = BitOperations.RotateRight(v12 ^ v1, 16); v11 += v12; v6 = BitOperations.RotateRight(v6 ^ v11, 63);
            v2 += v7 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 12)); v13 = BitOperations.RotateRight(v13 ^ v2, 32); v8 += v13; v7 = BitOperations.RotateRight(v7 ^ v8, 24);
            v2 += v7 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 13)); v13 = BitOperations.RotateRight(v13 ^ v2, 16); v8 += v13; v7 = BitOperations.RotateRight(v7 ^ v8, 63);
            v3 += v4 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 14)); v14 = BitOperations.RotateRight(v14 ^ v3, 32); v9 += v14; v4 = BitOperations.RotateRight(v4 ^ v9, 24);
            v3 += v4 + Unsafe.Add(ref mw, Unsafe.Add(ref s, 15)); v14 = BitOperations.RotateRight(v14 ^ v3, 16); v9 += v14; v4 = BitOperations.RotateRight(v4 ^ v9, 63);
        }

        h[0] ^= v0 ^ v8; h[1] ^= v1 ^ v9; h[2] ^= v2 ^ v10; h[3] ^= v3 ^ v11;
        h[4] ^= v4 ^ v12; h[5] ^= v5 ^ v13; h[6] ^= v6 ^ v14; h[7] ^= v7 ^ v15;
    }
}
