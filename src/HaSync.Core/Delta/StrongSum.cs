namespace HaSync.Delta;

/// <summary>The strong (collision-resistant) sum of one block, truncated to the signature's strong length.</summary>
internal static class StrongSum
{
    public static void Compute(bool blake2, ReadOnlySpan<byte> block, Span<byte> destination)
    {
        if (blake2)
            Blake2b.Hash(block, destination);
        else
            Md4.Hash(block, destination);
    }
}
