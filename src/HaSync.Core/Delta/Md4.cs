using System.Buffers.Binary;
using System.Numerics;

namespace HaSync.Delta;

/// <summary>
/// MD4 (RFC 1320), one-shot; writes at most 16 bytes. Only read for librsync's older signature formats (magics 0x72730136 and
/// 0x72730146); it is not a safe hash and HaSync never chooses it itself.
/// </summary>
internal static class Md4
{
    public const int HashLength = 16;

    public static void Hash(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        uint a = 0x67452301, b = 0xefcdab89, c = 0x98badcfe, d = 0x10325476;
        int full = data.Length & ~63;
        for (int offset = 0; offset < full; offset += 64)
            Block(data.Slice(offset, 64), ref a, ref b, ref c, ref d);

        // Padding: 0x80, zeros, then the bit length little-endian, in one or two final blocks.
        Span<byte> tail = stackalloc byte[128];
        tail.Clear();
        int rest = data.Length - full;
        data[full..].CopyTo(tail);
        tail[rest] = 0x80;
        int tailLength = rest < 56 ? 64 : 128;
        BinaryPrimitives.WriteUInt64LittleEndian(tail[(tailLength - 8)..], (ulong)data.Length * 8);
        for (int offset = 0; offset < tailLength; offset += 64)
            Block(tail.Slice(offset, 64), ref a, ref b, ref c, ref d);

        Span<byte> digest = stackalloc byte[HashLength];
        BinaryPrimitives.WriteUInt32LittleEndian(digest, a);
        BinaryPrimitives.WriteUInt32LittleEndian(digest[4..], b);
        BinaryPrimitives.WriteUInt32LittleEndian(digest[8..], c);
        BinaryPrimitives.WriteUInt32LittleEndian(digest[12..], d);
        digest[..Math.Min(HashLength, destination.Length)].CopyTo(destination);
    }

    private static void Block(ReadOnlySpan<byte> block, ref uint a0, ref uint b0, ref uint c0, ref uint d0)
    {
        Span<uint> x = stackalloc uint[16];
        for (int i = 0; i < 16; i++)
            x[i] = BinaryPrimitives.ReadUInt32LittleEndian(block[(4 * i)..]);
        uint a = a0, b = b0, c = c0, d = d0;

        static uint F(uint x, uint y, uint z) => (x & y) | (~x & z);
        static uint G(uint x, uint y, uint z) => (x & y) | (x & z) | (y & z);
        static uint H(uint x, uint y, uint z) => x ^ y ^ z;

        ReadOnlySpan<int> shifts1 = [3, 7, 11, 19];
        for (int i = 0; i < 16; i++)
        {
            uint t = BitOperations.RotateLeft(a + F(b, c, d) + x[i], shifts1[i & 3]);
            (a, b, c, d) = (d, t, b, c);
        }
        ReadOnlySpan<int> shifts2 = [3, 5, 9, 13];
        for (int i = 0; i < 16; i++)
        {
            int k = (i & 3) * 4 + (i >> 2);
            uint t = BitOperations.RotateLeft(a + G(b, c, d) + x[k] + 0x5a827999, shifts2[i & 3]);
            (a, b, c, d) = (d, t, b, c);
        }
        ReadOnlySpan<int> shifts3 = [3, 9, 11, 15];
        ReadOnlySpan<int> order3 = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
        for (int i = 0; i < 16; i++)
        {
            uint t = BitOperations.RotateLeft(a + H(b, c, d) + x[order3[i]] + 0x6ed9eba1, shifts3[i & 3]);
            (a, b, c, d) = (d, t, b, c);
        }
        a0 += a; b0 += b; c0 += c; d0 += d;
    }
}
