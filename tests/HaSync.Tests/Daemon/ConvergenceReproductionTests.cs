using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>
/// Sequences the churn found (or admins hit) that left the passive different from the active, each reduced to the
/// few operations that matter. Judged by <see cref="TreeOracle"/>; every wait bounded.
/// </summary>
[Collection("daemon")]
public class ConvergenceReproductionTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private static DaemonHarness Start(TempDir dir) =>
        new(dir.File("active"), dir.File("passive"), TestTree.LocalTarget(dir.File("passive")), dir.File("state"),
            exclude: Convergence.Excludes, configure: Convergence.AlwaysActive);

    [Fact]
    public async Task ADirectoryMovedIntoADirectoryCreatedJustBeforeKeepsItsWatch()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        const int rounds = 5; // it went wrong 4 or 5 times in 5: one round is not enough to see it
        string bm = Path.Join(dir.File("active"), "etc/bm");
        for (int i = 0; i < rounds; i++)
        {
            Directory.CreateDirectory(Path.Join(bm, $"a{i}/x"));
            File.WriteAllText(Path.Join(bm, $"a{i}/x/f.conf"), $"f {i}\n");
        }
        await using var daemon = Start(dir);
        await daemon.WaitConnectedAsync();
        await Convergence.WaitAsync(daemon, Bound, () => "start-up resync");

        for (int i = 0; i < rounds; i++)
        {
            // Within microseconds: the new directory's watch is being added while x moves into it.
            Directory.CreateDirectory(daemon.Active($"b{i}"));
            Directory.Move(daemon.Active($"a{i}/x"), daemon.Active($"b{i}/x"));
            await Task.Delay(1000);
            File.WriteAllText(daemon.Active($"b{i}/x/new.conf"), $"written into the moved directory, round {i}\n");
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        List<int> lost;
        while ((lost = [.. Enumerable.Range(0, rounds).Where(i => !File.Exists(daemon.Passive($"b{i}/x/new.conf")))]).Count > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(200);
        Assert.True(lost.Count == 0, $"new.conf written into a moved directory never reached the passive in rounds {string.Join(", ", lost)} of {rounds}"
            + $" (its watch was lost)\ndifferences:\n  {string.Join("\n  ", Convergence.Differences(daemon))}\nlog:\n{Convergence.Tail(daemon.Log.Lines, 40)}");
        await Convergence.WaitAsync(daemon, Bound, () => "after the moves");
    }

    [Fact]
    public async Task AFailedGroupCommitDoesNotLeaveAFileBehind()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        Directory.CreateDirectory(Path.Join(dir.File("active"), "etc/bm/x"));
        File.WriteAllText(Path.Join(dir.File("active"), "etc/bm/x/held.conf"), "x is a directory when the daemon starts\n");
        await using var daemon = Start(dir);
        await daemon.WaitConnectedAsync();
        await Convergence.WaitAsync(daemon, Bound, () => "start-up resync");

        // One burst, one batch: a new directory with a file, and a directory turned into a file (the part of the batch
        // that fails on the passive). Then the new directory goes again: nothing of it may stay on the passive.
        Directory.CreateDirectory(daemon.Active("a"));
        File.WriteAllText(daemon.Active("a/keep.conf"), "\n");
        Directory.Delete(daemon.Active("x"), recursive: true);
        File.WriteAllText(daemon.Active("x"), "\n");
        await Task.Delay(500);
        Directory.Delete(daemon.Active("a"), recursive: true);

        await Convergence.WaitAsync(daemon, Bound, () => "mkdir a; echo > a/keep.conf; rm -r x; echo > x; (500 ms) rm -r a");
        Assert.False(File.Exists(daemon.Passive("a/keep.conf")), "a/keep.conf stayed on the passive");
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after the failed group commit");
    }

    [Fact]
    public async Task ADirectoryReplacedByAFileThenAnRsyncIntoTheTreeSettles()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        // What rsync brings: the usual tree (conf.d a directory again), some files changed, some new, some gone.
        string source = dir.File("source");
        TestTree.Build(source);
        string sourceBm = Path.Join(source, "etc/bm");
        File.WriteAllText(Path.Join(sourceBm, "bm.ini"), "[global]\nhost = 192.0.2.77\n");
        File.WriteAllText(Path.Join(sourceBm, "conf.d/extra.conf"), "brought by rsync\n");
        Directory.CreateDirectory(Path.Join(sourceBm, "conf.d/sub"));
        File.WriteAllText(Path.Join(sourceBm, "conf.d/sub/deep.conf"), "deep\n");
        File.Delete(Path.Join(sourceBm, "empty-file"));
        await using var daemon = Start(dir);
        await daemon.WaitConnectedAsync();
        await Convergence.WaitAsync(daemon, Bound, () => "start-up resync");

        Directory.Delete(daemon.Active("conf.d"), recursive: true);
        File.WriteAllText(daemon.Active("conf.d"), "\n");
        await Convergence.WaitAsync(daemon, Bound, () => "rm -r conf.d; echo > conf.d");

        Tools.Check(Tools.Require("rsync", "rsync"), "-a", "--delete", sourceBm + "/", daemon.Active(""));
        var converged = await Convergence.WaitAsync(daemon, Bound, () => "after rsync -a --delete into the tree");
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after rsync -a --delete into the tree");

        // Settled means quiet: no path that is already right on the passive is retried again and again.
        int before = daemon.Log.Lines.Count;
        await Task.Delay(5000);
        var retries = daemon.Log.Lines.Skip(before).Where(l => l.StartsWith("Warning:", StringComparison.Ordinal) && l.Contains("conf.d", StringComparison.Ordinal)).ToList();
        Assert.True(retries.Count == 0, $"converged after {converged.TotalSeconds:F1} s, yet in the next 5 s the daemon warned {retries.Count} times about conf.d:\n{string.Join("\n", retries.Take(20))}");
        Assert.Empty(Convergence.Differences(daemon));
        Assert.Equal((0, 0), (daemon.Status().Targets[0].Queue, daemon.Status().Targets[0].Failing.Count)); // no silent retry either
    }
}
