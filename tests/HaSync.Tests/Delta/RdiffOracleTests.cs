using HaSync.Delta;
using HaSync.Tests.Support;

namespace HaSync.Tests.Delta;

/// <summary>
/// The real rdiff (librsync 2.3) as the oracle, over a seeded random matrix of sizes, block lengths,
/// strong lengths, signature kinds and edits: identical signature bytes, identical delta bytes, our patch
/// applies rdiff's delta, rdiff's patch applies ours.
/// </summary>
public sealed class RdiffOracleTests
{
    public static TheoryData<int, Mutation, int, int, int, SignatureMagic> Cases()
    {
        var data = new TheoryData<int, Mutation, int, int, int, SignatureMagic>();
        int[] sizes = [0, 1, 63, 64, 65, 255, 256, 257, 1000, 4096, 65536, 65537, 300_000, 1_100_000, 3_500_000];
        int[] blocks = [0, 1, 7, 64, 128, 256, 700, 2048, 16384];
        int[] strongs = [0, -1, 5, 16];
        SignatureMagic[] magics = Enum.GetValues<SignatureMagic>();
        Mutation[] mutations = Enum.GetValues<Mutation>();
        var random = new Random(20261122);
        for (int i = 0; i < 140; i++)
        {
            int size = sizes[random.Next(sizes.Length)];
            int block = blocks[random.Next(blocks.Length)];
            if (block is > 0 and < 64 && size > 65537)
                block = 0; // a 1-byte block over megabytes is millions of rdiff table entries: slow, and nothing new
            var magic = i < 60 ? SignatureMagic.RabinKarpBlake2 : magics[random.Next(magics.Length)];
            int strong = strongs[random.Next(strongs.Length)];
            var mutation = mutations[i % mutations.Length];
            data.Add(i, mutation, size, block, strong, magic);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SignatureDeltaAndPatchMatchRdiff(int seed, Mutation mutation, int size, int block, int strong, SignatureMagic magic)
    {
        using var dir = new TempDir();
        var (basis, updated) = TestData.Pair(mutation, size, seed);
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);

        string hash = magic.UsesBlake2() ? "blake2" : "md4";
        string rollsum = magic.UsesRabinKarp() ? "rabinkarp" : "rollsum";
        Tools.Check(Tools.Rdiff, "-H", hash, "-R", rollsum, "-b", block.ToString(), "-S", strong.ToString(),
            "signature", dir.File("basis"), dir.File("sig.rdiff"));
        byte[] rdiffSignature = File.ReadAllBytes(dir.File("sig.rdiff"));

        var parameters = SignatureParameters.Choose(basis.Length, magic, block, strong);
        var ourSignature = new MemoryStream();
        SignatureGenerator.Generate(new MemoryStream(basis), ourSignature, parameters);
        Assert.Equal(rdiffSignature, ourSignature.ToArray());

        Tools.Check(Tools.Rdiff, "delta", dir.File("sig.rdiff"), dir.File("new"), dir.File("delta.rdiff"));
        byte[] rdiffDelta = File.ReadAllBytes(dir.File("delta.rdiff"));
        var ourDelta = new MemoryStream();
        var stats = DeltaEncoder.Encode(Signature.Read(new MemoryStream(rdiffSignature)), new MemoryStream(updated), ourDelta);
        Assert.Equal(rdiffDelta, ourDelta.ToArray());
        Assert.Equal(updated.Length, stats.NewLength);

        var patched = new MemoryStream();
        DeltaPatcher.Apply(new MemoryStream(basis), new MemoryStream(rdiffDelta), patched);
        Assert.Equal(updated, patched.ToArray());

        File.WriteAllBytes(dir.File("delta.ours"), ourDelta.ToArray());
        Tools.Check(Tools.Rdiff, "patch", dir.File("basis"), dir.File("delta.ours"), dir.File("new.rdiff"));
        Assert.Equal(updated, File.ReadAllBytes(dir.File("new.rdiff")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5000)]
    [InlineData(1_000_000)]
    public void SignatureOfAPipeUsesRdiffsUnknownSizeDefaults(int size)
    {
        byte[] basis = TestData.Random(new Random(size), size);
        var (code, rdiffSignature, stderr) = Tools.Run(Tools.Rdiff, ["-S", "-1", "signature"], stdin: basis);
        Assert.True(code == 0, stderr);

        var ours = new MemoryStream();
        SignatureGenerator.Generate(new MemoryStream(basis), ours, SignatureParameters.Choose(null, strongLength: -1));
        Assert.Equal(rdiffSignature, ours.ToArray());
    }

    [Fact]
    public void EqualBlocksMatchTheFirstOfThem()
    {
        // Every block of the basis is the same: rdiff copies from block 0 each time, and so must we.
        byte[] block = TestData.Random(new Random(7), 256);
        byte[] basis = Enumerable.Repeat(block, 40).SelectMany(b => b).ToArray();
        byte[] updated = [.. block, .. TestData.Random(new Random(8), 10), .. block, .. block];
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);
        Tools.Check(Tools.Rdiff, "signature", dir.File("basis"), dir.File("sig"));
        Tools.Check(Tools.Rdiff, "delta", dir.File("sig"), dir.File("new"), dir.File("delta"));

        var ours = new MemoryStream();
        DeltaEncoder.Encode(Signature.Read(File.OpenRead(dir.File("sig"))), new MemoryStream(updated), ours);
        Assert.Equal(File.ReadAllBytes(dir.File("delta")), ours.ToArray());
    }

    [Theory]
    [InlineData(Mutation.Edits, 1)]
    [InlineData(Mutation.Inserts, 2)]
    [InlineData(Mutation.Append, 3)]
    [InlineData(Mutation.MovedBlocks, 5)]
    [InlineData(Mutation.Identical, 6)]
    public void TheNewFilesOwnBlockSumsGiveRdiffsDeltaByteForByte(Mutation mutation, int seed)
    {
        // The sender has the new file's block sums from the compare's hash pass: a delta that takes them for the windows
        // that are its blocks must be the very delta rdiff computes by hashing every window.
        var (basis, updated) = TestData.Pair(mutation, 400_000, seed);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("basis"), basis);
        File.WriteAllBytes(dir.File("new"), updated);
        int block = HaSync.Delta.SignatureParameters.SyncBlockLength(updated.Length);
        Tools.Check(Tools.Rdiff, "-b", block.ToString(), "-S", "8", "signature", dir.File("basis"), dir.File("sig"));
        Tools.Check(Tools.Rdiff, "delta", dir.File("sig"), dir.File("new"), dir.File("delta"));

        var hasher = new HaSync.Scanning.ContentHasher(updated.Length, collectSignature: true);
        hasher.Update(updated);
        hasher.Finish();
        var own = hasher.Signature!.Truncated(8);
        var ours = new MemoryStream();
        DeltaEncoder.Encode(Signature.Read(File.OpenRead(dir.File("sig"))), new MemoryStream(updated), ours, own);
        Assert.Equal(File.ReadAllBytes(dir.File("delta")), ours.ToArray());
    }
}
