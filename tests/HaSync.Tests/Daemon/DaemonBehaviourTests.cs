using HaSync.Configuration;
using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>The daemon's promises beyond single edits: audits repair drift, targets are independent, and a
/// kernel watch limit is named and survived.</summary>
[Collection("daemon")]
public class DaemonBehaviourTests
{
    private static TargetConfig Local(string passiveRoot, string name = "local") => TestTree.LocalTarget(passiveRoot) with { Name = name };

    [Fact]
    public async Task ThePeriodicAuditRepairsDriftAndReportsALocalEditAsAConflict()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), Local(dir.File("passive")), dir.File("state"),
            options: DaemonHarness.FastRetries with { AuditInterval = TimeSpan.FromMilliseconds(500) });
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync();

        // Someone works on the passive by hand: no event on the active says so; only the audit can see it. A deleted
        // file and a changed mode lose nothing of the passive's own when put back; an edited file would.
        File.WriteAllText(daemon.Passive("bm.ini"), "edited on the passive\n");
        File.Delete(daemon.Passive("helper"));
        TestTree.Chmod(daemon.Passive("nobody.conf"), "600");
        await daemon.Eventually(() => Convergence.Differences(daemon) is [var only] && only.StartsWith("bm.ini: size ", StringComparison.Ordinal),
            "the audit to repair all but the edit", () => string.Join("\n", Convergence.Differences(daemon)));
        await daemon.Eventually(() => daemon.Status().Targets[0].Conflicts is [{ Path: "/etc/bm/bm.ini" }], "the status to show the conflict");
        Assert.Equal("edited on the passive\n", File.ReadAllText(daemon.Passive("bm.ini")));
        string copy = Path.Join(TestTree.PassiveState(dir.File("passive")), "conflicts/etc/bm/bm.ini");
        Assert.Equal(File.ReadAllText(daemon.Active("bm.ini")), File.ReadAllText(copy)); // the active's version, kept beside it
        var (code, line) = daemon.Check();
        Assert.Equal(2, code);
        Assert.StartsWith("HASYNC CRITICAL - no role check configured", line); // the harness sets no role: a warning, outranked
        Assert.Contains("; local 1 conflict(s), first /etc/bm/bm.ini since ", line);
        Assert.Contains("(hasync resolve /etc/bm/bm.ini --take active|passive)", line);
        Assert.Contains("'local_conflicts'=1;;1;0", line);
        await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.StartsWith("Error: local: conflict: ", StringComparison.Ordinal)
            && l.Contains("bm.ini: changed on this node since HaSync last wrote it; left as it is; the active's version is at " + copy)), "the conflict to be logged");
    }

    [Fact]
    public async Task TheSelfCheckAfterAQuietPeriodRepairsWhatTheDaemonWronglyBelievedAndCountsIt()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), Local(dir.File("passive")), dir.File("state"),
            configure: c => c with { Daemon = c.Daemon with { SelfCheckAfter = TimeSpan.FromSeconds(3) } });
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync();

        // A push the daemon believes done, then undone behind its back before the quiet period ends: what a lost
        // commit looks like from the active. Only the self-check can see it (no event on the active, no audit).
        Directory.CreateDirectory(daemon.Active("conf.d/new"));
        File.WriteAllText(daemon.Active("conf.d/new/pushed.conf"), "pushed\n");
        await daemon.Eventually(() => File.Exists(daemon.Passive("conf.d/new/pushed.conf")), "the push");
        File.Delete(daemon.Passive("conf.d/new/pushed.conf"));
        await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.Contains("drift repaired: /etc/bm/conf.d/new/pushed.conf: the daemon believed the passive held a file of 7 bytes")
            && l.Contains("it held nothing")), "the self-check to find the drift");
        await daemon.WaitIdenticalAsync();
        // Two drifts: the file, and the time of its directory, which the delete moved.
        Assert.Contains(daemon.Log.Lines, l => l.Contains("drift repaired: /etc/bm/conf.d/new: the daemon believed the passive held a directory (0755", StringComparison.Ordinal));
        await daemon.Eventually(() => daemon.Status().Targets[0].DriftRepaired == 2, "the status to count them");
        await daemon.Eventually(() => daemon.Check().Line.Contains("'local_drift_repaired'=2c"), "check's perfdata to count them");
    }

    [Fact]
    public async Task ADeadTargetHoldsBackNoOther()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        var dead = new TargetConfig { Name = "dead", Transport = TransportKind.Local, Command = ["/nonexistent/hasync", "serve", "--root", dir.File("never")] };
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), Local(dir.File("passive"), "alive"), dir.File("state"),
            configure: c => c with { Targets = [dead, .. c.Targets] });
        await daemon.Eventually(() => File.Exists(daemon.Config.StatusFile) && daemon.Status().Targets.Single(t => t.Name == "alive").Connected, "the live target");
        File.WriteAllText(daemon.Active("new.conf"), "only one passive can take this\n");
        await daemon.WaitIdenticalAsync();
        var deadStatus = daemon.Status().Targets.Single(t => t.Name == "dead");
        Assert.False(deadStatus.Connected);
        Assert.Contains("cannot start /nonexistent/hasync", deadStatus.LastError);
    }

    [Fact]
    public async Task AWatchLimitIsNamedTheRestIsWatchedAndTheMissingWatchesComeLater()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        for (int i = 0; i < 20; i++)
            Directory.CreateDirectory(dir.File($"active/etc/bm/many/d{i:D2}"));
        // Room for a few more watches than root holds now: the daemon's tree (24 directories) does not fit.
        var daemon = await DaemonHarness.UnderInotifyLimitAsync("max_user_watches", (WatchesInUse() + 4).ToString(),
            () => new DaemonHarness(dir.File("active"), dir.File("passive"), Local(dir.File("passive")), dir.File("state")),
            d => d.Eventually(() => d.Log.Lines.Any(l => l.Contains("inotify watch limit is reached (fs.inotify.max_user_watches = ")), "the limit to be named"));
        await using (daemon)
        {
            await daemon.WaitConnectedAsync();
            Assert.Contains(daemon.Status().WatchProblems, p => p.Contains("raise it with sysctl"));
            File.WriteAllText(daemon.Active("bm.ini"), "changed while not everything is watched\n");
            await daemon.WaitIdenticalAsync(); // the directories it could watch keep working
            await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.Contains("/etc/bm: watched again")), "the retry to watch everything");
            File.WriteAllText(daemon.Active("many/d19/late.conf"), "in a directory watched only after the retry\n");
            await daemon.WaitIdenticalAsync();
            await daemon.Eventually(() => daemon.Status().WatchProblems.Count == 0, "the status to clear");
        }
    }

    /// <summary>inotify watches held by processes of this user now (the limit counts them all).</summary>
    private static int WatchesInUse()
    {
        int count = 0;
        foreach (string fdinfo in Directory.EnumerateDirectories("/proc").Where(p => Path.GetFileName(p).All(char.IsAsciiDigit)).Select(p => Path.Join(p, "fdinfo")))
        {
            try
            {
                foreach (string file in Directory.EnumerateFiles(fdinfo))
                    count += File.ReadLines(file).Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // a process that ended meanwhile
            }
        }
        return count;
    }
}
