using System.Security.Cryptography;
using HaSync.Delta;
using HaSync.Protocol;
using HaSync.Scanning;
using HaSync.Tests.Support;

namespace HaSync.Tests.Delta;

/// <summary>The agent checks a patched file's hash taking, for the blocks a delta copied whole from the basis, the basis's
/// own block digests (hashed by the manifest a moment before) instead of hashing those bytes again. The hash must come
/// out as if every byte had been hashed, whatever the edits, shifts and the patcher's chunking.</summary>
public sealed class LentDigestTests
{
    [Theory]
    [InlineData(Mutation.Edits, 1, 3_000_000)]
    [InlineData(Mutation.Inserts, 2, 3_000_000)]
    [InlineData(Mutation.Deletes, 3, 3_000_000)]
    [InlineData(Mutation.MovedBlocks, 4, 3_000_000)]
    [InlineData(Mutation.Append, 5, 3_000_000)]
    [InlineData(Mutation.Truncate, 6, 3_000_000)]
    [InlineData(Mutation.Identical, 7, 3_000_000)]
    [InlineData(Mutation.Edits, 8, 2_999_999)] // a short last block
    public void APatchedFilesHashWithLentDigestsIsItsHash(Mutation mutation, int seed, int size)
    {
        var (basis, updated) = TestData.Pair(mutation, size, seed);
        var (hash, written, taken) = Patch(basis, updated, BasisDigests(basis));
        Assert.Equal(updated, written);
        Assert.Equal(SignatureParameters.SyncBlockLength(basis.Length) == SignatureParameters.SyncBlockLength(updated.Length), taken);
        Assert.Equal(SHA256.HashData(ContentHasher.Of(updated)), SHA256.HashData(hash!)); // the oracle hashes every byte
    }

    [Fact]
    public void TheDigestsLentAreTheOnesUsed()
    {
        // Lent digests that lie (every block's digest zeroed) change the hash of a file patched with few edits: the copied
        // blocks were not hashed again. (If they were, this check could not tell, and the saving would not be there.)
        var (basis, updated) = TestData.Pair(Mutation.Edits, 3_000_000, 9);
        var lie = BasisDigests(basis);
        var zeroed = TestSignature(lie.Parameters, lie.Count);
        var (hash, _, _) = Patch(basis, updated, zeroed);
        Assert.NotEqual(ContentHasher.Of(updated), hash);
    }

    [Fact]
    public void DigestsOfBlocksOfAnotherLengthAreNotTaken()
    {
        // A basis much shorter than the result has blocks of another length: its digests say nothing of the result's blocks.
        var (basis, _) = TestData.Pair(Mutation.Identical, 300_000, 10);
        var updated = basis.Concat(RandomNumberGenerator.GetBytes(9_000_000)).ToArray();
        var digests = BasisDigests(basis);
        var zeroed = TestSignature(digests.Parameters, digests.Count);
        var (hash, _, taken) = Patch(basis, updated, zeroed);
        Assert.False(taken);
        Assert.Equal(ContentHasher.Of(updated), hash);
    }

    private static Signature BasisDigests(byte[] basis)
    {
        var hasher = new ContentHasher(basis.Length, collectSignature: true);
        hasher.Update(basis);
        hasher.Finish();
        return hasher.Signature!;
    }

    private static Signature TestSignature(SignatureParameters parameters, int count)
    {
        var signature = new Signature(parameters, count);
        for (int i = 0; i < count; i++)
            signature.Add(0, new byte[parameters.StrongLength]);
        return signature;
    }

    /// <summary>rdiff-format delta of <paramref name="updated"/> against <paramref name="basis"/>, applied with the digests
    /// lent to the hashing output; the hash and the bytes written.</summary>
    private static (byte[]? Hash, byte[] Written, bool Taken) Patch(byte[] basis, byte[] updated, Signature lent)
    {
        var signature = new MemoryStream();
        SignatureGenerator.Generate(new MemoryStream(basis), signature, SignatureParameters.ForSync(basis.Length));
        var delta = new MemoryStream();
        DeltaEncoder.Encode(Signature.Read(new MemoryStream(signature.ToArray())), new MemoryStream(updated), delta);
        var written = new MemoryStream();
        var hashing = new HashingWriteStream(written, updated.Length);
        bool taken = hashing.UseBasisDigests(lent, basis.Length);
        DeltaPatcher.Apply(new MemoryStream(basis), new MemoryStream(delta.ToArray()), hashing, maxOutputLength: updated.Length);
        return (hashing.Finish(), written.ToArray(), taken);
    }
}
