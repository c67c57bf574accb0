using HaSync.Scanning;
using HaSync.Tests.Support;
using Mono.Unix.Native;

namespace HaSync.Tests.Apply;

/// <summary>The agent's hash cache (state_dir/hashes.bin): a manifest of an unchanged passive reads no content, and a
/// file changed behind it is still seen, whatever size and mtime it was given back.</summary>
public sealed class AgentHashCacheTests
{
    [Fact]
    public async Task AnUnchangedFileIsTakenFromTheCacheAndOneRewrittenWithItsOldSizeAndMtimeIsReadAgain()
    {
        using var dir = new TempDir();
        string root = dir.File("passive"), file = Path.Join(root, "etc/a.conf");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        byte[] first = "first content\n"u8.ToArray(), second = "other content\n"u8.ToArray(); // the same size
        File.WriteAllBytes(file, first);
        Thread.Sleep(HashCache.RacyWindow + TimeSpan.FromMilliseconds(100)); // a file hashed within it is not cached
        var target = TestTree.LocalTarget(root);
        string cachePath = Path.Join(TestTree.PassiveState(root), "hashes.bin");

        Assert.Equal(ContentHasher.Of(first), await ManifestHash(target));
        Assert.True(File.Exists(cachePath));
        Assert.Equal("600", Convert.ToString((uint)Stat(cachePath).st_mode & 0x1FF, 8));

        // Proof that the next session takes the hash from the cache rather than the file: a hash planted for the file's
        // exact version comes back.
        byte[] planted = new byte[32];
        planted[0] = 0x5a;
        var cache = HashCache.Load(cachePath, problem => Assert.Fail(problem));
        Assert.Equal(1, cache.Count);
        cache.Remember("/etc/a.conf", Stat(file), planted, DateTimeOffset.UtcNow);
        cache.Save(cachePath);
        Assert.Equal(planted, await ManifestHash(target));

        // Rewritten in place, same size, mtime set back to the nanosecond: only the ctime moved, and that is enough.
        var before = Stat(file);
        File.WriteAllBytes(file, second);
        var times = new[]
        {
            new Timespec { tv_sec = before.st_atime, tv_nsec = before.st_atime_nsec },
            new Timespec { tv_sec = before.st_mtime, tv_nsec = before.st_mtime_nsec },
        };
        Assert.Equal(0, Syscall.utimensat(Syscall.AT_FDCWD, file, times, 0));
        var after = Stat(file);
        Assert.Equal((before.st_ino, before.st_size, before.st_mtime, before.st_mtime_nsec), (after.st_ino, after.st_size, after.st_mtime, after.st_mtime_nsec));
        Assert.Equal(ContentHasher.Of(second), await ManifestHash(target));
    }

    /// <summary>A manifest that took a large file's hash from the cache read nothing, so the signature a delta then asks for
    /// is computed on its own (the manifest's two-core pass), and it is still exactly rdiff's.</summary>
    [Fact]
    public async Task TheSignatureOfAFileTheCacheKnewIsRdiffs()
    {
        using var dir = new TempDir();
        string root = dir.File("passive"), file = Path.Join(root, "etc/big.db");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        byte[] content = TestData.Random(new Random(13), 9 << 20); // past the size hashed in two halves
        File.WriteAllBytes(file, content);
        Thread.Sleep(HashCache.RacyWindow + TimeSpan.FromMilliseconds(100));
        var target = TestTree.LocalTarget(root);
        Assert.Equal(ContentHasher.Of(content), await ManifestHash(target, "/etc/big.db")); // hashed, and cached

        var signature = await TestTree.WithSession(target, async session =>
        {
            Assert.Equal(ContentHasher.Of(content), (await session.RequestManifest(["/etc/big.db"])).Single().Hash);
            return await session.RequestSignature("/etc/big.db");
        });
        string block = HaSync.Delta.SignatureParameters.SyncBlockLength(content.Length).ToString();
        Tools.Check(Tools.Rdiff, "-b", block, "-S", HaSync.Delta.SignatureParameters.SyncStrongLength.ToString(), "signature", file, dir.File("sig"));
        Assert.Equal(File.ReadAllBytes(dir.File("sig")), signature);
    }

    [Fact]
    public void ACacheFileThatIsNotWholeIsRefusedWholeAndSaid()
    {
        using var dir = new TempDir();
        string file = dir.File("f"), cachePath = dir.File("hashes.bin");
        File.WriteAllText(file, "x\n");
        var cache = new HashCache();
        cache.Remember("/f", Stat(file), ContentHasher.Of("x\n"u8.ToArray()), DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2));
        cache.Remember("/g", Stat(file), new byte[32], DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2));
        cache.Save(cachePath);
        Assert.False(cache.Changed);

        var loaded = HashCache.Load(cachePath, problem => Assert.Fail(problem));
        Assert.Equal(2, loaded.Count);
        Assert.Equal(ContentHasher.Of("x\n"u8.ToArray()), loaded.Find("/f", Stat(file)));
        Assert.False(loaded.Changed);

        byte[] whole = File.ReadAllBytes(cachePath);
        foreach (byte[] damaged in new[] { whole[..^1], whole[..(whole.Length / 2)], Flipped(whole, whole.Length / 2), Flipped(whole, 3) })
        {
            File.WriteAllBytes(cachePath, damaged);
            var problems = new List<string>();
            var refused = HashCache.Load(cachePath, problems.Add);
            Assert.Equal(0, refused.Count);
            Assert.Contains(cachePath, Assert.Single(problems));
        }
        Assert.Equal(0, HashCache.Load(dir.File("absent"), problem => Assert.Fail(problem)).Count);
        Assert.Equal(0, HashCache.Load(dir.File("no-state-dir/hashes.bin"), problem => Assert.Fail(problem)).Count); // a first run
    }

    private static byte[] Flipped(byte[] data, int at)
    {
        byte[] copy = (byte[])data.Clone();
        copy[at] ^= 0x01;
        return copy;
    }

    private static Stat Stat(string path) => Syscall.lstat(path, out var st) == 0 ? st : throw new IOException($"{path}: lstat failed");

    private static async Task<byte[]?> ManifestHash(HaSync.Configuration.TargetConfig target, string path = "/etc/a.conf") =>
        await TestTree.WithSession(target, async session => (await session.RequestManifest([path])).Single().Hash);
}
