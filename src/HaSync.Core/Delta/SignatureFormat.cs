namespace HaSync.Delta;

/// <summary>The four librsync signature magics: which rolling (weak) and strong sum a signature uses.</summary>
public enum SignatureMagic : uint
{
    /// <summary>Rollsum (rsync's Adler-like sum) + MD4. librsync 0.9 and rdiff <c>-R rollsum -H md4</c>.</summary>
    Md4 = 0x72730136,
    /// <summary>Rollsum + BLAKE2b.</summary>
    Blake2 = 0x72730137,
    /// <summary>RabinKarp + MD4.</summary>
    RabinKarpMd4 = 0x72730146,
    /// <summary>RabinKarp + BLAKE2b: rdiff 2.x's default, and HaSync's.</summary>
    RabinKarpBlake2 = 0x72730147,
}

/// <summary>Constants and helpers of the librsync file formats.</summary>
public static class SignatureFormat
{
    /// <summary>Magic that opens every librsync delta.</summary>
    public const uint DeltaMagic = 0x72730236;

    /// <summary>Signature header: magic, block length, strong-sum length, each a big-endian uint32.</summary>
    public const int HeaderLength = 12;

    /// <summary>Largest block length HaSync reads from a signature; anything larger is treated as corrupt
    /// (the delta encoder holds a few blocks in memory, so an absurd value would be an allocation bomb).</summary>
    public const int MaxBlockLength = 1 << 28;

    /// <summary>Block length rdiff uses when the basis length is unknown (a pipe).</summary>
    public const int DefaultBlockLength = 2048;

    /// <summary>Below this size a whole file costs less than a signature round trip: HaSync sends it whole.</summary>
    public const long DeltaMinimumFileSize = 4096;

    /// <summary>Minimum strong-sum length rdiff uses with <c>-S -1</c> when the basis length is unknown.</summary>
    public const int DefaultMinStrongLength = 12;

    /// <summary>True for the magics that use the RabinKarp rolling sum.</summary>
    public static bool UsesRabinKarp(this SignatureMagic magic) =>
        magic is SignatureMagic.RabinKarpBlake2 or SignatureMagic.RabinKarpMd4;

    /// <summary>True for the magics whose strong sum is BLAKE2b.</summary>
    public static bool UsesBlake2(this SignatureMagic magic) =>
        magic is SignatureMagic.RabinKarpBlake2 or SignatureMagic.Blake2;

    /// <summary>Longest strong sum the magic's hash gives.</summary>
    public static int MaxStrongLength(this SignatureMagic magic) => magic.UsesBlake2() ? Blake2b.HashLength : Md4.HashLength;

    /// <summary>True when <paramref name="value"/> is one of the four signature magics.</summary>
    public static bool IsKnown(uint value) => Defined<SignatureMagic>.Is((SignatureMagic)value);
}

/// <summary>The three numbers in a signature header.</summary>
/// <param name="Magic">Which weak and strong sums.</param>
/// <param name="BlockLength">Bytes per block; the last block of the basis may be shorter.</param>
/// <param name="StrongLength">Bytes of the strong sum kept per block (a prefix of the full hash).</param>
public readonly record struct SignatureParameters(SignatureMagic Magic, int BlockLength, int StrongLength)
{
    /// <summary>
    /// Chooses parameters as rdiff 2.3 does (<c>rs_sig_args</c>): block length sqrt(size) rounded down to a
    /// multiple of 128 with a 256-byte minimum (2048 when the size is unknown); strong length 0 means the
    /// hash's full length, -1 the smallest safe length for the size.
    /// </summary>
    /// <param name="basisLength">Length of the basis, or null when it is unknown (read from a pipe).</param>
    /// <param name="magic">Signature kind.</param>
    /// <param name="blockLength">0 for the recommended length, else the length to use.</param>
    /// <param name="strongLength">0 for the maximum, -1 for the minimum, else the length to use.</param>
    /// <exception cref="ArgumentOutOfRangeException">A length is out of range for the magic.</exception>
    public static SignatureParameters Choose(long? basisLength, SignatureMagic magic = SignatureMagic.RabinKarpBlake2,
        int blockLength = 0, int strongLength = 0)
    {
        if (!SignatureFormat.IsKnown((uint)magic))
            throw new ArgumentOutOfRangeException(nameof(magic), $"unknown signature magic 0x{(uint)magic:x8}");
        if (blockLength < 0 || blockLength > SignatureFormat.MaxBlockLength)
            throw new ArgumentOutOfRangeException(nameof(blockLength), $"block length {blockLength} is outside 1..{SignatureFormat.MaxBlockLength} (0 = recommended)");
        if (blockLength == 0)
            blockLength = basisLength switch
            {
                null => SignatureFormat.DefaultBlockLength,
                <= 256 * 256 => 256,
                long n => (int)Math.Min(SignatureFormat.MaxBlockLength, IntegerSqrt(n) & ~127L),
            };

        int max = magic.MaxStrongLength();
        if (strongLength == 0)
            strongLength = max;
        else if (strongLength == -1)
            strongLength = basisLength is long size
                ? 2 + (Log2(size + (1L << 24)) + Log2(size / blockLength + 1) + 7) / 8
                : SignatureFormat.DefaultMinStrongLength;
        else if (strongLength < 1 || strongLength > max)
            throw new ArgumentOutOfRangeException(nameof(strongLength), $"strong sum length {strongLength} is outside 1..{max} for signature magic 0x{(uint)magic:x8} (0 = maximum, -1 = minimum)");
        return new SignatureParameters(magic, blockLength, strongLength);
    }

    /// <summary>
    /// The parameters HaSync syncs with: half rdiff's block length (scattered edits in configuration files and
    /// databases spoil less literal data) and 8-byte strong sums (weak plus strong make 96 bits per match, and the
    /// whole-file hash every transfer is verified against catches the rare false match, as rsync's does).
    /// </summary>
    public static SignatureParameters ForSync(long basisLength) =>
        Choose(basisLength, blockLength: SyncBlockLength(basisLength), strongLength: SyncStrongLength);

    /// <summary>Strong sum bytes in the signatures HaSync exchanges.</summary>
    public const int SyncStrongLength = 8;

    /// <summary>Block length HaSync hashes and syncs a file of <paramref name="length"/> bytes with.</summary>
    public static int SyncBlockLength(long length) => Math.Max(256, Choose(length).BlockLength / 2 & ~127);

    private static long IntegerSqrt(long n)
    {
        long root = (long)Math.Sqrt(n); // a double can be one off near large squares: settle it exactly
        while (root * root > n)
            root--;
        while ((root + 1) * (root + 1) <= n)
            root++;
        return root;
    }

    private static int Log2(long value) => value <= 0 ? 0 : 63 - (int)long.LeadingZeroCount(value);
}
