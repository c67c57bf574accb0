using System.Numerics;
using System.Runtime.CompilerServices;

namespace HaSync.Delta;

/// <summary>
/// Finds the basis block whose weak and strong sums match a window of the new file.
/// </summary>
/// <remarks>
/// Implementation notes: the delta encoder asks at every byte of unmatched data, so a miss must be cheap.
/// A bit filter of about 16 bits per block answers most misses from one cache line; the rest go to an
/// open-addressed table with linear probing, at most a quarter full. Like librsync's hash table, only the
/// first block with a given (weak, strong) pair is entered, so a repeated block always matches at its
/// first offset: that choice is what makes our deltas byte-identical to rdiff's.
/// </remarks>
internal sealed class BlockIndex
{
    private readonly Signature _signature;
    private readonly ulong[] _filter;
    private readonly int _filterShift;
    private readonly uint[] _keys;   // weak sum per slot
    private readonly int[] _blocks;  // block number + 1 per slot; 0 = empty
    private readonly int _tableShift;

    public BlockIndex(Signature signature)
    {
        _signature = signature;
        int count = signature.Count;
        int tableBits = Math.Max(4, BitOperations.Log2((uint)Math.Max(count, 1)) + 3); // >= 4 slots per block
        int filterBits = Math.Max(6, BitOperations.Log2((uint)Math.Max(count, 1)) + 5); // >= 16 bits per block
        _keys = new uint[1 << tableBits];
        _blocks = new int[1 << tableBits];
        _tableShift = 32 - tableBits;
        _filter = new ulong[(1 << filterBits) / 64];
        _filterShift = 32 - filterBits;

        for (int block = 0; block < count; block++)
        {
            uint weak = signature.WeakSum(block);
            if (Find(weak, signature.StrongSum(block)) >= 0)
                continue; // a repeat: the first block with these sums stays the answer
            int slot = (int)(Mix(weak) >> _tableShift);
            while (_blocks[slot] != 0)
                slot = (slot + 1) & (_blocks.Length - 1);
            _keys[slot] = weak;
            _blocks[slot] = block + 1;
            uint bit = Mix2(weak) >> _filterShift;
            _filter[bit >> 6] |= 1UL << (int)(bit & 63);
        }
    }

    /// <summary>Cheap first test: false means no block has this weak sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool MayContain(uint weak)
    {
        uint bit = Mix2(weak) >> _filterShift;
        return (_filter[bit >> 6] & (1UL << (int)(bit & 63))) != 0;
    }

    /// <summary>
    /// The first block whose weak sum is <paramref name="weak"/> and whose strong sum is the prefix of
    /// <paramref name="strong"/>, or -1.
    /// </summary>
    public int Find(uint weak, ReadOnlySpan<byte> strong)
    {
        int mask = _blocks.Length - 1;
        for (int slot = (int)(Mix(weak) >> _tableShift); _blocks[slot] != 0; slot = (slot + 1) & mask)
        {
            if (_keys[slot] == weak && _signature.StrongSum(_blocks[slot] - 1).SequenceEqual(strong[.._signature.Parameters.StrongLength]))
                return _blocks[slot] - 1;
        }
        return -1;
    }

    /// <summary>True when some block has this weak sum (the strong sum still has to be checked).</summary>
    public bool HasWeak(uint weak)
    {
        int mask = _blocks.Length - 1;
        for (int slot = (int)(Mix(weak) >> _tableShift); _blocks[slot] != 0; slot = (slot + 1) & mask)
            if (_keys[slot] == weak)
                return true;
        return false;
    }

    // Fibonacci hashing: the old rollsum's digest is far from uniform, so spread it before taking top bits.
    private static uint Mix(uint weak) => weak * 0x9E3779B1u;
    private static uint Mix2(uint weak) => (weak ^ (weak >> 15)) * 0x85EBCA6Bu;
}
