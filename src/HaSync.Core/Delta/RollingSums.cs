using System.Runtime.CompilerServices;

namespace HaSync.Delta;

/// <summary>
/// A rolling (weak) checksum over a window of bytes, as librsync defines it. A struct implementation
/// passed as a generic argument lets the JIT specialise the delta loop: no virtual call per byte.
/// </summary>
internal interface IRollingSum
{
    /// <summary>Bytes currently in the window.</summary>
    int Count { get; }
    /// <summary>The 32-bit weak sum as written in signatures.</summary>
    uint Digest { get; }
    /// <summary>Empties the window.</summary>
    void Reset();
    /// <summary>Appends <paramref name="data"/> to the window.</summary>
    void Update(ReadOnlySpan<byte> data);
    /// <summary>Slides the window one byte: <paramref name="outgoing"/> leaves, <paramref name="incoming"/> enters.</summary>
    void Rotate(byte outgoing, byte incoming);
    /// <summary>Removes the first byte of the window, <paramref name="outgoing"/>.</summary>
    void RollOut(byte outgoing);
}

/// <summary>librsync's RabinKarp sum: a polynomial hash mod 2^32 with seed 1 (rdiff's default).</summary>
internal struct RabinKarpSum : IRollingSum
{
    private const uint Mult = 0x08104225;
    private const uint InverseMult = 0x98f009ad; // Mult * InverseMult == 1 (mod 2^32)
    private const uint Seed = 1;
    private const uint Adjust = Mult - 1;        // folds the seed into the outgoing byte's term

    private uint _hash;
    private uint _multPower; // Mult^Count
    private int _count;

    public RabinKarpSum() => Reset();

    public readonly int Count => _count;
    public readonly uint Digest => _hash;

    public void Reset()
    {
        _hash = Seed;
        _multPower = 1;
        _count = 0;
    }

    public void Update(ReadOnlySpan<byte> data)
    {
        // Eight bytes a step with independent multiplies, so the loop is not bound by one multiply chain.
        const uint M2 = unchecked(Mult * Mult), M3 = unchecked(M2 * Mult), M4 = unchecked(M3 * Mult),
            M5 = unchecked(M4 * Mult), M6 = unchecked(M5 * Mult), M7 = unchecked(M6 * Mult), M8 = unchecked(M7 * Mult);
        uint hash = _hash, power = _multPower;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            hash = hash * M8 + data[i] * M7 + data[i + 1] * M6 + data[i + 2] * M5 + data[i + 3] * M4
                 + data[i + 4] * M3 + data[i + 5] * M2 + data[i + 6] * Mult + data[i + 7];
            power *= M8;
        }
        for (; i < data.Length; i++)
        {
            hash = hash * Mult + data[i];
            power *= Mult;
        }
        _hash = hash;
        _multPower = power;
        _count += data.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Rotate(byte outgoing, byte incoming) =>
        _hash = _hash * Mult + incoming - _multPower * (outgoing + Adjust);

    public void RollOut(byte outgoing)
    {
        _count--;
        _multPower *= InverseMult;
        _hash -= _multPower * (outgoing + Adjust);
    }
}

/// <summary>librsync's original rollsum (rsync's Adler-32 variant with a character offset of 31).</summary>
internal struct Rollsum : IRollingSum
{
    private const uint CharOffset = 31;
    private uint _s1, _s2; // only the low 16 bits of each reach the digest, so wrapping at 2^32 is harmless
    private int _count;

    public readonly int Count => _count;
    public readonly uint Digest => (_s2 << 16) | (_s1 & 0xffff);

    public void Reset() => (_s1, _s2, _count) = (0, 0, 0);

    public void Update(ReadOnlySpan<byte> data)
    {
        uint s1 = _s1, s2 = _s2;
        foreach (byte b in data)
        {
            s1 += b + CharOffset;
            s2 += s1;
        }
        (_s1, _s2) = (s1, s2);
        _count += data.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Rotate(byte outgoing, byte incoming)
    {
        _s1 += (uint)incoming - outgoing;
        _s2 += _s1 - (uint)_count * (outgoing + CharOffset);
    }

    public void RollOut(byte outgoing)
    {
        _s1 -= outgoing + CharOffset;
        _s2 -= (uint)_count * (outgoing + CharOffset);
        _count--;
    }
}
