using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        uint hash = _hash, power = _multPower;
        int done = 0;
        if (Vector256.IsHardwareAccelerated && data.Length >= 2 * VectorStep)
        {
            done = data.Length - data.Length % VectorStep;
            uint steps = VectorSum(data[..done], out uint sum);
            uint stepPower = Pow(MultPower32, steps);
            hash = hash * stepPower + sum;
            power *= stepPower;
        }
        for (int i = done; i < data.Length; i++)
        {
            hash = hash * Mult + data[i];
            power *= Mult;
        }
        _hash = hash;
        _multPower = power;
        _count += data.Length;
    }

    private const int VectorStep = 32;
    private static readonly uint MultPower32 = Pow(Mult, VectorStep);
    private static readonly Vector256<uint>[] LaneWeights = CreateLaneWeights();

    /// <summary>
    /// The polynomial part (seed excluded) of <paramref name="data"/>, a multiple of 32 bytes long. Byte
    /// 32k+8a+j goes to lane j of accumulator a; each step multiplies every accumulator by Mult^32, so the
    /// four multiply chains are independent. At the end lane j of accumulator a is weighted by
    /// Mult^(31-8a-j), its distance from the end of a 32-byte step.
    /// </summary>
    private static uint VectorSum(ReadOnlySpan<byte> data, out uint sum)
    {
        var step = Vector256.Create(MultPower32);
        Vector256<uint> a0 = default, a1 = default, a2 = default, a3 = default;
        ref byte start = ref MemoryMarshal.GetReference(data);
        for (nuint offset = 0; offset < (nuint)data.Length; offset += VectorStep)
        {
            var bytes = Vector256.LoadUnsafe(ref start, offset);
            var (low, high) = Vector256.Widen(bytes);
            var (w0, w1) = Vector256.Widen(low);
            var (w2, w3) = Vector256.Widen(high);
            a0 = a0 * step + w0;
            a1 = a1 * step + w1;
            a2 = a2 * step + w2;
            a3 = a3 * step + w3;
        }
        var weights = LaneWeights;
        sum = Vector256.Sum(a0 * weights[0] + a1 * weights[1] + a2 * weights[2] + a3 * weights[3]);
        return (uint)(data.Length / VectorStep);
    }

    private static Vector256<uint>[] CreateLaneWeights()
    {
        var weights = new Vector256<uint>[4];
        Span<uint> lanes = stackalloc uint[8];
        for (int a = 0; a < 4; a++)
        {
            for (int j = 0; j < 8; j++)
                lanes[j] = Pow(Mult, VectorStep - 1 - 8 * a - j);
            weights[a] = Vector256.Create<uint>(lanes);
        }
        return weights;
    }

    private static uint Pow(uint value, uint exponent)
    {
        uint result = 1;
        for (; exponent != 0; exponent >>= 1, value *= value)
            if ((exponent & 1) != 0)
                result *= value;
        return result;
    }

    private static uint Pow(uint value, int exponent) => Pow(value, (uint)exponent);

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
