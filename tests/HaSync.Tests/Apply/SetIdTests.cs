using System.Text;
using HaSync.Scanning;
using HaSync.Tests.Support;
using Mono.Unix.Native;

namespace HaSync.Tests.Apply;

/// <summary>
/// Set-user-id and set-group-id bits: stripped by the passive's agent unless its own command line says
/// <c>--allow-setid</c> (the sender cannot ask for them), reported by <c>diff</c> and <c>resync</c>, and never taken for
/// drift by the daemon. Modes are read here with lstat, not with the product's scanner.
/// </summary>
public sealed class SetIdTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static uint ModeOf(string path)
    {
        Assert.Equal(0, Syscall.lstat(path, out var st));
        return (uint)st.st_mode & 0xfff;
    }

    private static string Octal(uint mode) => Convert.ToString(mode, 8);

    /// <summary>An active tree with a set-uid program, a set-gid program and a set-gid sticky directory.</summary>
    private static void BuildSetIdTree(string activeRoot)
    {
        string bm = Path.Join(activeRoot, "etc/bm");
        Directory.CreateDirectory(Path.Join(bm, "spool"));
        File.WriteAllText(Path.Join(bm, "bm.ini"), "[global]\n");
        File.WriteAllText(Path.Join(bm, "suid-tool"), "#!/bin/sh\n");
        File.WriteAllText(Path.Join(bm, "sgid-tool"), "#!/bin/sh\n");
        TestTree.Chmod(Path.Join(bm, "suid-tool"), "4755");
        TestTree.Chmod(Path.Join(bm, "sgid-tool"), "2750");
        TestTree.Chmod(Path.Join(bm, "spool"), "3777");
    }

    private static string WriteConfig(TempDir dir, params string[] agentOptions)
    {
        string extra = string.Concat(agentOptions.Select(o => ", " + o));
        File.WriteAllText(dir.File("hasync.yaml"), $"""
            source_root: active
            paths: [/etc/bm]
            state_dir: state
            role: always
            targets:
              - name: local
                transport: local
                command: [{Hasync}, serve, --root, passive, --state, passive-state{extra}]
            """);
        return dir.File("hasync.yaml");
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] arguments)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, arguments);
        return (code, Encoding.UTF8.GetString(stdout), stderr);
    }

    [Fact]
    public void ByDefaultThePassiveGetsNoSetIdBitsAndResyncAndDiffSaySo()
    {
        using var dir = new TempDir();
        BuildSetIdTree(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir);

        var resync = Run("resync", "-c", config);
        Assert.True(resync.Code == 0, resync.Stderr);
        Assert.Contains("local: /etc/bm/suid-tool: mode 4755 on the active; the passive's agent strips set-user-id and set-group-id bits (start it with --allow-setid to keep them)", resync.Stderr);
        Assert.Contains("local: /etc/bm/spool: mode 3777 on the active;", resync.Stderr);
        // The rest of each mode is the active's; the sticky bit (which only restricts) stays.
        Assert.Equal(("755", "750", "1777"), (Octal(ModeOf(dir.File("passive/etc/bm/suid-tool"))), Octal(ModeOf(dir.File("passive/etc/bm/sgid-tool"))),
            Octal(ModeOf(dir.File("passive/etc/bm/spool")))));
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive")); // the oracle's default: set-id bits are not expected there

        // Nothing is left to push: a second resync changes nothing, and says again what is not kept.
        var again = Run("resync", "-c", config);
        Assert.True(again.Code == 0, again.Stderr);
        Assert.Matches(@"local: 5 scanned, 0 files sent, 0 dirs/links made, 0 metadata fixed, 0 deleted", again.Stdout);
        Assert.Contains("/etc/bm/sgid-tool: mode 2750 on the active", again.Stderr);

        // diff does not call the pair identical: a failover would find these modes without their set-id bits.
        var diff = Run("diff", "-c", config);
        Assert.Equal(1, diff.Code);
        Assert.Contains("local: /etc/bm/suid-tool: set-id bits not kept: mode 4755 on the active, 0755 on the passive (its agent strips them; start it with --allow-setid to keep them)", diff.Stdout);
        Assert.Contains("local: /etc/bm/spool: set-id bits not kept: mode 3777 on the active, 1777 on the passive", diff.Stdout);
        Assert.Contains("local: 3 of 5 paths differ (3 setid)", diff.Stdout);
        var json = Run("diff", "-c", config, "--json");
        Assert.Contains("\"in_sync\": false", json.Stdout);
        Assert.Contains("\"setid\": 3", json.Stdout);
    }

    [Fact]
    public void WithAllowSetIdOnThePassiveTheModesAreKeptAsTheActiveHasThem()
    {
        using var dir = new TempDir();
        BuildSetIdTree(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, "--allow-setid");

        var resync = Run("resync", "-c", config);
        Assert.True(resync.Code == 0, resync.Stderr);
        Assert.DoesNotContain("set-user-id", resync.Stderr);
        Assert.Equal(("4755", "2750", "3777"), (Octal(ModeOf(dir.File("passive/etc/bm/suid-tool"))), Octal(ModeOf(dir.File("passive/etc/bm/sgid-tool"))),
            Octal(ModeOf(dir.File("passive/etc/bm/spool")))));
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive"), setIdKept: true);
        Assert.Equal(0, Run("diff", "-c", config).Code);
    }

    [Fact]
    public async Task TheAgentStripsSetIdBitsWhateverTheSenderAsksFor()
    {
        // A sender that ignores the welcome's policy (an older or hostile one) asks for set-id modes outright.
        using var passive = new TempDir();
        var target = TestTree.LocalTarget(passive.Path);
        byte[] content = Encoding.UTF8.GetBytes("#!/bin/sh\n");
        File.WriteAllBytes(passive.File("existing"), content);
        await TestTree.WithSession(target, async session =>
        {
            Assert.Equal(ModeBits.All & ~ModeBits.SetId, session.KeptModeBits); // the welcome says so
            var file = TestTree.FileEntry("/new", content) with { Mode = 0xded }; // 06755
            var directory = new FileEntry { Path = "/dir", Kind = EntryKind.Directory, Mode = 0xfff }; // 07777
            var existing = TestTree.FileEntry("/existing", content) with { Mode = 0x9ed }; // 04755
            var acks = new[]
            {
                session.SendPut(file, HaSync.Protocol.PutEncoding.Whole, s => s.Write(content)),
                session.SendMakeDirectory(directory),
                session.SendSetMetadata(existing),
            };
            await session.SendFlush();
            foreach (var ack in acks)
                Assert.Equal(HaSync.Protocol.AckStatus.Ok, (await ack).Status);
            return 0;
        });
        Assert.Equal(("755", "1777", "755"), (Octal(ModeOf(passive.File("new"))), Octal(ModeOf(passive.File("dir"))), Octal(ModeOf(passive.File("existing")))));
    }

    [Fact]
    public async Task TheDaemonPushesASetUidFileWithoutItsBitsSaysSoOnceAndFindsNoDrift()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), TestTree.LocalTarget(dir.File("passive")), dir.File("state"),
            configure: c => Convergence.AlwaysActive(c) with { Daemon = c.Daemon with { SelfCheckAfter = TimeSpan.FromSeconds(1) } });
        await daemon.WaitConnectedAsync();
        File.WriteAllText(daemon.Active("suid-tool"), "#!/bin/sh\n");
        TestTree.Chmod(daemon.Active("suid-tool"), "4755");
        await daemon.WaitIdenticalAsync();
        File.AppendAllText(daemon.Active("suid-tool"), "echo v2\n"); // pushed again: the daemon must not warn twice
        TestTree.Chmod(daemon.Active("suid-tool"), "4755");
        await daemon.WaitIdenticalAsync();
        var pushed = DateTimeOffset.UtcNow;
        Assert.Equal("755", Octal(ModeOf(daemon.Passive("suid-tool"))));
        // A self-check compares the passive's manifest with the daemon's belief: it must not call the stripped bits drift.
        await daemon.Eventually(() => daemon.Status().Targets[0].LastSelfCheck > pushed, "a self-check after the second push");
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(20), () => "");
        Assert.Equal(0, daemon.Status().Targets[0].DriftRepaired);
        Assert.Single(daemon.Log.Lines, l => l.Contains("/etc/bm/suid-tool: mode 4755 on the active; the passive's agent strips", StringComparison.Ordinal));
        Assert.DoesNotContain(daemon.Log.Lines, l => l.Contains("drift repaired", StringComparison.Ordinal));
    }
}
