using HaSync.Configuration;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;

namespace HaSync.Tests.Sync;

/// <summary>Resync and diff end to end, through the local transport and through a real sshd on loopback.</summary>
public sealed class ResyncTests(SshServer ssh) : IClassFixture<SshServer>
{
    public static TheoryData<string> Transports => ["local", "ssh"];

    private TargetConfig Target(string transport, string passiveRoot) => transport == "ssh"
        ? ssh.Target("ssh", "--root", passiveRoot)
        : TestTree.LocalTarget(passiveRoot);

    private static Task<T> WithSession<T>(TargetConfig target, Func<AgentSession, Task<T>> work) => TestTree.WithSession(target, work);

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task PassiveEndsIdenticalAndASecondRunSendsNothing(string transport)
    {
        using var active = new TempDir();
        using var passive = new TempDir();
        TestTree.Build(active.Path);
        var config = TestTree.Config(active.Path, Target(transport, passive.Path));

        var first = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));
        Assert.Empty(first.Failures);
        Assert.True(first.FilesSent > 10, $"sent {first.FilesSent} files");
        TestTree.AssertIdentical(active.Path, passive.Path);

        long sessionWire = 0;
        var second = await WithSession(config.Targets[0], async s =>
        {
            var stats = await Resync.RunAsync(config, s, delete: true);
            sessionWire = s.WireBytes;
            return stats;
        });
        Assert.Empty(second.Failures);
        Assert.Equal((0, 0, 0, 0, 0L), (second.FilesSent, second.OthersCreated, second.MetadataFixed, second.Deleted, second.LiteralBytes));
        // The summary counts the whole conversation (the manifest above all), less only the handshake.
        Assert.InRange(second.WireBytes, sessionWire - 200, sessionWire);
        Assert.True(second.WireBytes > 19 * 20, $"{second.WireBytes} B on the wire for a manifest of 19 entries");
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task ChangedLargeFileTravelsAsADelta(string transport)
    {
        using var active = new TempDir();
        using var passive = new TempDir();
        TestTree.Build(active.Path);
        var config = TestTree.Config(active.Path, Target(transport, passive.Path));
        await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));

        string large = Path.Join(active.Path, "etc/bm/large.bin");
        using (var f = new FileStream(large, FileMode.Open))
        {
            f.Position = 150_000;
            f.Write("a small edit"u8);
        }
        var stats = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));
        Assert.Empty(stats.Failures);
        Assert.Equal(1, stats.FilesSent);
        Assert.InRange(stats.LiteralBytes, 1, 20_000);
        Assert.True(stats.MatchedBytes > 250_000, $"matched only {stats.MatchedBytes} bytes");
        TestTree.AssertIdentical(active.Path, passive.Path);
    }

    /// <summary>The agent drops the passive copy's cached pages as a delta consumes them (see ReplacedBasis): a delta whose
    /// copies go back to what was already read must still rebuild the file exactly, reading those pages from the disk.</summary>
    [Theory]
    [MemberData(nameof(Transports))]
    public async Task ADeltaThatReadsThePassivesCopyOutOfOrderRebuildsItExactly(string transport)
    {
        using var active = new TempDir();
        using var passive = new TempDir();
        TestTree.Build(active.Path);
        string large = Path.Join(active.Path, "etc/bm/reordered.bin");
        var halves = new[] { new byte[6 << 20], new byte[6 << 20] }; // each longer than the agent's 4 MiB drop step
        new Random(13).NextBytes(halves[0]);
        new Random(17).NextBytes(halves[1]);
        File.WriteAllBytes(large, [.. halves[0], .. halves[1]]);
        var config = TestTree.Config(active.Path, Target(transport, passive.Path));
        await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));

        // The second half first, then the first half, then the second half again: the copies read the passive's copy from
        // its middle to its end, then from its start (dropped by then), then its middle again.
        halves[1][1000] ^= 0xff;
        File.WriteAllBytes(large, [.. halves[1], .. halves[0], .. halves[1]]);
        var stats = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));
        Assert.Empty(stats.Failures);
        Assert.Equal(1, stats.FilesSent);
        Assert.True(stats.MatchedBytes > 17 << 20, $"matched only {stats.MatchedBytes} of {18 << 20} bytes: not sent as a delta");
        TestTree.AssertIdentical(active.Path, passive.Path);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task DiffFindsEachKindOfDifferenceAndResyncRepairsThem(string transport)
    {
        using var active = new TempDir();
        using var passive = new TempDir();
        TestTree.Build(active.Path);
        var config = TestTree.Config(active.Path, Target(transport, passive.Path));
        await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));
        var inSync = await WithSession(config.Targets[0], s => DiffReport.BuildAsync(config, s));
        Assert.All(inSync, i => Assert.Equal("identical", i.Status));

        string p(string relative) => Path.Join(passive.Path, "etc/bm", relative);
        File.WriteAllText(p("bm.ini"), "[global]\nhost = 192.0.2.99\n");                 // content (text)
        File.WriteAllText(p("private.key"), "-----BEGIN PRIVATE KEY-----\nother\n");      // content (secret)
        TestTree.Chmod(p("helper"), "700");                                               // mode
        TestTree.Chown(p("nobody.conf"), 0, 0);                                           // owner and group
        File.SetLastWriteTimeUtc(p("with space.conf"), new DateTime(2020, 1, 1));         // mtime
        File.Delete(p("empty-file"));                                                     // missing
        File.WriteAllText(p("stray.conf"), "not on the active\n");                        // extra
        File.Delete(p("current.ini"));
        File.CreateSymbolicLink(p("current.ini"), "elsewhere.ini");                       // symlink target
        Directory.Delete(p("empty"));
        File.WriteAllText(p("empty"), "a file where the active has a directory\n");       // type
        Directory.SetLastWriteTimeUtc(p("conf.d"), new DateTime(2020, 1, 1));            // a directory's mtime

        var report = (await WithSession(config.Targets[0], s => DiffReport.BuildAsync(config, s))).ToDictionary(i => i.Path);
        DiffItem item(string relative) => report["/etc/bm/" + relative];
        // Content changed on the passive since HaSync wrote it, or put there by hand, is a conflict (a push would keep it).
        const string edited = "changed on the passive since HaSync last wrote it";
        Assert.Equal(("conflict", edited, false), (item("bm.ini").Status, item("bm.ini").Conflict, item("bm.ini").Redacted));
        Assert.Contains("-host = 192.0.2.99", item("bm.ini").UnifiedDiff);
        Assert.Contains("+host = 192.0.2.10", item("bm.ini").UnifiedDiff);
        Assert.Equal(("conflict", true, null), (item("private.key").Status, item("private.key").Redacted, item("private.key").UnifiedDiff));
        AssertItem(item("helper"), "metadata", "mode");
        AssertItem(item("nobody.conf"), "metadata", "owner", "group");
        AssertItem(item("with space.conf"), "metadata", "mtime");
        Assert.Equal("missing", item("empty-file").Status);
        Assert.Equal(("conflict", true), (item("stray.conf").Status, item("stray.conf").Conflict!.StartsWith("on the passive before HaSync wrote it", StringComparison.Ordinal)));
        AssertItem(item("current.ini"), "conflict", "target");
        Assert.Equal(edited, item("current.ini").Conflict);
        AssertItem(item("empty"), "conflict", "type");
        Assert.Equal("identical", item("large.bin").Status);
        AssertItem(item("conf.d"), "metadata", "mtime");
        AssertItem(report["/etc/bm"], "metadata", "mtime"); // the entries made and removed in it above moved it

        var repair = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true)); // as resync --force
        Assert.Empty(repair.Failures);
        TestTree.AssertIdentical(active.Path, passive.Path);
    }

    private static void AssertItem(DiffItem item, string status, params string[] fields)
    {
        Assert.True(item.Status == status, $"{item.Path}: {item.Status}, expected {status}");
        Assert.Equal(fields, item.Fields);
    }

    [Fact]
    public async Task NoDeleteKeepsExtrasAndExcludedFilesNeverTravel()
    {
        using var active = new TempDir();
        using var passive = new TempDir();
        TestTree.Build(active.Path);
        File.WriteAllText(Path.Join(active.Path, "etc/bm/bm.ini.swp"), "vim swap");
        var config = TestTree.Config(active.Path, TestTree.LocalTarget(passive.Path), "*.swp");
        Directory.CreateDirectory(Path.Join(passive.Path, "etc/bm"));
        File.WriteAllText(Path.Join(passive.Path, "etc/bm/stray.conf"), "extra");

        var stats = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: false));
        Assert.Empty(stats.Failures);
        Assert.False(File.Exists(Path.Join(passive.Path, "etc/bm/bm.ini.swp")));
        Assert.True(File.Exists(Path.Join(passive.Path, "etc/bm/stray.conf")));
        Assert.Equal(0, stats.Deleted);

        stats = await WithSession(config.Targets[0], s => Resync.RunAsync(config, s, delete: true));
        Assert.Equal(1, stats.Deleted);
        Assert.False(File.Exists(Path.Join(passive.Path, "etc/bm/stray.conf")));
    }
}
