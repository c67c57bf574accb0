using System.Text;
using HaSync.Delta;
using HaSync.Tests.Support;

namespace HaSync.Tests.Delta;

public sealed class HashTests
{
    [Theory]
    [InlineData("", "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")]
    [InlineData("abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")]
    public void Blake2b256KnownAnswers(string input, string expected)
    {
        var digest = new byte[32];
        Blake2b.Hash(Encoding.ASCII.GetBytes(input), digest);
        Assert.Equal(expected, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Blake2b256OfSeveralBlocksMatchesReference()
    {
        // 1280 bytes: ten compressions, the last one a full block (the final-flag edge case).
        byte[] data = Enumerable.Repeat(Enumerable.Range(0, 256).Select(i => (byte)i), 5).SelectMany(x => x).ToArray();
        var digest = new byte[32];
        Blake2b.Hash(data, digest);
        Assert.Equal("82628cbfc9689e234b0923a531f4578fe2e7138a03e2f81ed6cde97517336650", Convert.ToHexStringLower(digest));
    }

    /// <summary>Expected digests from Python's hashlib.blake2b(data, key=key, digest_size=32).</summary>
    [Theory]
    [InlineData(0, 32, "4e51e7a913fc80137da52880fecca175bf81e117d5c68126dc2774033517ea0d")]   // the key block is the final one
    [InlineData(3, 32, "d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f")]
    [InlineData(768, 32, "c2eeafd52585e210bcdf69b926e9323b0a97d06bc0254e213084251d17aa888b")] // six full blocks after the key's
    [InlineData(3, 64, "dff38c978666dff5631db35ca15535520d134f5c8060ea569c6a178ad393719f")]
    public void KeyedBlake2b256KnownAnswers(int length, int keyLength, string expected)
    {
        byte[] data = length == 3 ? "abc"u8.ToArray() : Enumerable.Range(0, length).Select(i => (byte)i).ToArray();
        byte[] key = Enumerable.Range(0, keyLength).Select(i => (byte)i).ToArray();
        var digest = new byte[32];
        var hasher = new Blake2b(key);
        hasher.Update(data.AsSpan(0, length / 2));
        hasher.Update(data.AsSpan(length / 2));
        hasher.Finish(digest);
        Assert.Equal(expected, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void IncrementalUpdatesEqualOneShot()
    {
        var random = new Random(3);
        foreach (int length in new[] { 0, 1, 127, 128, 129, 255, 256, 257, 1000, 4096, 10_001 })
        {
            byte[] data = TestData.Random(random, length);
            var expected = new byte[32];
            Blake2b.Hash(data, expected);

            var hasher = new Blake2b();
            int offset = 0;
            while (offset < length)
            {
                int take = Math.Min(length - offset, random.Next(1, 300));
                hasher.Update(data.AsSpan(offset, take));
                offset += take;
            }
            var actual = new byte[32];
            hasher.Finish(actual);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void VectorAndScalarCompressionAgree()
    {
        var random = new Random(11);
        for (int i = 0; i < 200; i++)
        {
            ulong[] chain = Enumerable.Range(0, 8).Select(_ => (ulong)random.NextInt64()).ToArray();
            ulong[] message = Enumerable.Range(0, 16).Select(_ => (ulong)random.NextInt64() ^ ((ulong)random.Next() << 63)).ToArray();
            var (vector, scalar) = Blake2b.CompressBothWays(chain, message, (ulong)random.NextInt64(), final: i % 2 == 0);
            Assert.Equal(scalar, vector);
        }
    }

    [Fact]
    public void FourMessagesAtOnceHashAsEachAlone()
    {
        var random = new Random(13);
        foreach (int length in new[] { 0, 1, 127, 128, 129, 256, 1000, 4992, 10_001 })
        {
            byte[] messages = TestData.Random(random, 4 * length);
            var together = new byte[4 * 32];
            Blake2b.Hash4(messages, length, together);
            for (int lane = 0; lane < 4; lane++)
            {
                var alone = new byte[32];
                Blake2b.Hash(messages.AsSpan(lane * length, length), alone);
                Assert.True(alone.AsSpan().SequenceEqual(together.AsSpan(lane * 32, 32)), $"length {length}, message {lane}");
            }
        }
    }

    [Theory]
    [InlineData("", "31d6cfe0d16ae931b73c59d7e0c089c0")]
    [InlineData("abc", "a448017aaf21d8525fc10ae87aa6729d")]
    [InlineData("message digest", "d9130a8164549fe818874806e1c7014b")]
    [InlineData("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "e33b4ddc9c38f2199c3e7b164fcc0536")]
    public void Md4KnownAnswers(string input, string expected)
    {
        var digest = new byte[16];
        Md4.Hash(Encoding.ASCII.GetBytes(input), digest);
        Assert.Equal(expected, Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void RabinKarpVectorPathEqualsByteAtATime()
    {
        var random = new Random(5);
        foreach (int length in new[] { 63, 64, 65, 95, 96, 1000, 14080 })
        {
            byte[] data = TestData.Random(random, length);
            var whole = new RabinKarpSum();
            whole.Update(data);
            var bytewise = new RabinKarpSum();
            foreach (byte b in data)
                bytewise.Update([b]);
            Assert.Equal(bytewise.Digest, whole.Digest);
        }
    }

    [Fact]
    public void RollingEqualsRecomputing()
    {
        byte[] data = TestData.Random(new Random(9), 3000);
        const int window = 100;
        var rk = new RabinKarpSum();
        var rs = new Rollsum();
        rk.Update(data.AsSpan(0, window));
        rs.Update(data.AsSpan(0, window));
        for (int start = 1; start + window <= data.Length; start++)
        {
            rk.Rotate(data[start - 1], data[start + window - 1]);
            rs.Rotate(data[start - 1], data[start + window - 1]);
            Assert.Equal(SignatureGenerator.WeakSum(true, data.AsSpan(start, window)), rk.Digest);
            Assert.Equal(SignatureGenerator.WeakSum(false, data.AsSpan(start, window)), rs.Digest);
        }
        for (int start = data.Length - window; start < data.Length - 1; start++)
        {
            rk.RollOut(data[start]);
            rs.RollOut(data[start]);
            Assert.Equal(SignatureGenerator.WeakSum(true, data.AsSpan(start + 1)), rk.Digest);
            Assert.Equal(SignatureGenerator.WeakSum(false, data.AsSpan(start + 1)), rs.Digest);
        }
    }
}

public sealed class ContentHashTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    [InlineData(70_000)]
    [InlineData(1_000_003)]
    public void IsBlake2bOverTheLengthAndRdiffsStrongSums(int size)
    {
        // Checkable with standard tools: the block digests are the strong sums `rdiff signature -b BLOCK` prints.
        byte[] content = TestData.Random(new Random(size), size);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("f"), content);
        string block = SignatureParameters.SyncBlockLength(size).ToString();
        Tools.Check(Tools.Rdiff, "signature", "-b", block, dir.File("f"), dir.File("sig"));
        byte[] signature = File.ReadAllBytes(dir.File("sig"));
        int blocks = (signature.Length - 12) / 36;
        var outer = new Blake2b();
        byte[] length = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(length, size);
        outer.Update(length);
        for (int i = 0; i < blocks; i++)
            outer.Update(signature.AsSpan(12 + 36 * i + 4, 32));
        var expected = new byte[32];
        outer.Finish(expected);

        Assert.Equal(expected, HaSync.Scanning.ContentHasher.Of(content));

        // In small pieces, and in pieces of any size up to several blocks (whole groups of blocks hashed where they lie,
        // the rest copied aside until its group is complete).
        var random = new Random(size);
        foreach (Func<int> piece in new Func<int>[] { () => 777, () => random.Next(1, 300_000) })
        {
            var hasher = new HaSync.Scanning.ContentHasher(size, collectSignature: true);
            for (int offset = 0, take; offset < size; offset += take)
            {
                take = Math.Min(piece(), size - offset);
                hasher.Update(content.AsSpan(offset, take));
            }
            Assert.Equal(expected, hasher.Finish());
            var ours = new MemoryStream();
            hasher.Signature!.WriteTo(ours);
            Assert.Equal(signature, ours.ToArray()); // the signature a hash pass yields is rdiff's, byte for byte
        }
    }

    [Theory]
    [InlineData(9 << 20)]
    [InlineData((9 << 20) + 777)]
    public void ALargeFileHashedInTwoHalvesAtOnceHashesAsRdiffSignsIt(int size)
    {
        byte[] content = TestData.Random(new Random(size), size);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("f"), content);
        Tools.Check(Tools.Rdiff, "signature", "-b", SignatureParameters.SyncBlockLength(size).ToString(), dir.File("f"), dir.File("sig"));
        Signature? signature = null;
        var entry = HaSync.Scanning.PosixFiles.Describe(dir.File("f"), "/f", onSignature: (_, _, s) => signature = s)!;
        Assert.Equal(HaSync.Scanning.ContentHasher.Of(content), entry.Hash);
        var ours = new MemoryStream();
        signature!.WriteTo(ours);
        Assert.Equal(File.ReadAllBytes(dir.File("sig")), ours.ToArray());
    }

    [Fact]
    public void ContentShorterOrLongerThanAnnouncedHasNoHash()
    {
        var hasher = new HaSync.Scanning.ContentHasher(10);
        hasher.Update(new byte[9]);
        Assert.Null(hasher.Finish());
    }
}
