using System.Diagnostics;
using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;
using Mono.Unix.Native;

namespace HaSync.Tests.Daemon;

/// <summary>
/// What breaks in production, made to break for real: the ssh process killed mid-transfer, the target down
/// for a while, the kernel's event queue overflowing. Each time the passive keeps complete files and converges.
/// </summary>
[Collection("daemon")]
public class DaemonFaultTests(SshServer server, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<SshServer>
{
    /// <summary>The link to the passive cut without a word (its veth taken down: no reset, no FIN, packets just lost), then
    /// back: the daemon calls the target disconnected within seconds and says so once, the agent left on the passive
    /// exits by itself, and once the link is back the daemon reconnects and brings over what changed meanwhile.</summary>
    [Fact]
    public async Task ALinkCutIsSeenWithinSecondsTheStrandedAgentExitsAndTheLinkBackConverges()
    {
        string id = Guid.NewGuid().ToString("N")[..8];
        string netns = $"hasync-cut-{id}", hostSide = $"hsh{id}", passiveSide = $"hsp{id}";
        Tools.Check("ip", "netns", "add", netns);
        try
        {
            Tools.Check("ip", "link", "add", hostSide, "type", "veth", "peer", "name", passiveSide, "netns", netns);
            Tools.Check("ip", "addr", "add", "10.231.7.1/30", "dev", hostSide);
            Tools.Check("ip", "link", "set", hostSide, "up");
            Tools.Check("ip", "-n", netns, "addr", "add", "10.231.7.2/30", "dev", passiveSide);
            Tools.Check("ip", "-n", netns, "link", "set", passiveSide, "up");
            Tools.Check("ip", "-n", netns, "link", "set", "lo", "up");
            using var passiveNode = SshServer.InNamespace("10.231.7.2", netns);
            using var dir = new TempDir();
            TestTree.Build(dir.File("active"));
            string passive = dir.File("passive-" + id);
            Directory.CreateDirectory(passive);
            var target = passiveNode.Target("passive", "--root", passive) with { Heartbeat = TimeSpan.FromMilliseconds(500) };
            await using var daemon = new DaemonHarness(dir.File("active"), passive, target, dir.File("state"), configure: Convergence.AlwaysActive);
            await daemon.WaitConnectedAsync();
            await daemon.WaitIdenticalAsync();
            Assert.Equal(0, daemon.Check().Code);
            int Stranded() => AgentsServingRoot(passive);
            Assert.Equal(1, Stranded());

            Tools.Check("ip", "link", "set", hostSide, "down");
            var clock = Stopwatch.StartNew();
            File.WriteAllText(daemon.Active("during-cut.conf"), "written while the link was down\n");
            await daemon.Eventually(() => daemon.Status().Targets[0].Connected == false, "the daemon to see the cut");
            var seen = clock.Elapsed;
            Assert.True(seen < TimeSpan.FromSeconds(10), $"the cut was seen after {seen.TotalSeconds:F1} s");
            var (code, line) = daemon.Check();
            Assert.Equal(1, code);
            Assert.Contains("passive disconnected since", line);
            await daemon.Eventually(() => Stranded() == 0, "the agent stranded on the passive to exit");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the stranded agent ran {clock.Elapsed.TotalSeconds:F1} s after the cut");
            output.WriteLine($"heartbeat 0.5 s: the cut seen after {seen.TotalSeconds:F1} s, the stranded agent gone after {clock.Elapsed.TotalSeconds:F1} s");
            Assert.Single(daemon.Log.Lines, l => l.Contains("nothing came from the agent for 2.5 s", StringComparison.Ordinal));

            Tools.Check("ip", "link", "set", hostSide, "up");
            await daemon.Eventually(() => daemon.Status().Targets[0].Connected, "a new session once the link is back");
            await daemon.WaitIdenticalAsync();
            Assert.Equal("written while the link was down\n", File.ReadAllText(Path.Join(passive, "etc/bm/during-cut.conf")));
        }
        finally
        {
            Tools.Run("ip", ["netns", "del", netns]); // takes the veth pair with it
        }
    }

    /// <summary>A target down for a while has its reconnects spaced out (doubling); SIGHUP tries at once, and once a session
    /// has worked, the next outage starts again from the first short wait instead of where the last one left off.</summary>
    [Fact]
    public async Task ReconnectsBackOffSighupTriesAtOnceAndAWorkingSessionStartsTheBackoffAfresh()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string down = dir.File("target-down");
        File.WriteAllText(down, "");
        var agent = TestTree.LocalTarget(dir.File("passive"));
        var target = agent with
        {
            Command = ["/bin/sh", "-c", "test -e \"$0\" && { echo 'the passive is down' >&2; exit 1; }; exec \"$@\"", down, .. agent.Command],
        };
        var initial = TimeSpan.FromMilliseconds(200);
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), target, dir.File("state"),
            options: DaemonHarness.FastRetries with { InitialBackoff = initial, MaxBackoff = TimeSpan.FromMinutes(1) }, configure: Convergence.AlwaysActive);
        // 0.2, 0.4, 0.8, 1.6 s...: wait for a wait of over 3 s.
        await daemon.Eventually(() => daemon.Status().Targets[0] is { NextConnect: { } next, LastErrorAt: { } failed } && next - failed > TimeSpan.FromSeconds(3),
            "the waits between tries to grow");
        var due = daemon.Status().Targets[0].NextConnect!.Value;
        File.Delete(down);
        daemon.Daemon.RetryNow(); // what SIGHUP does
        await daemon.Eventually(() => daemon.Status().Targets[0].Connected, "a connection right after SIGHUP");
        Assert.True(daemon.Status().Targets[0].Since < due, $"connected at {daemon.Status().Targets[0].Since:O}, the next try was due at {due:O}");

        int first = daemon.Status().Targets[0].AgentPid!.Value;
        Syscall.kill(first, Signum.SIGKILL);
        // A new outage: the first, short wait (too short for the status file, written once a second, to be sure to show it).
        await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.Contains("session lost: the agent closed the connection", StringComparison.Ordinal)
            && l.Contains("reconnecting in 0.2 s", StringComparison.Ordinal)), "the session to be lost and tried again after the first wait");
        await daemon.Eventually(() => daemon.Status().Targets[0] is { Connected: true, AgentPid: { } pid } && pid != first, "another agent");
    }

    /// <summary>How many <c>hasync serve</c> processes serve <paramref name="root"/> on this machine (a namespace's too).</summary>
    private static int AgentsServingRoot(string root) => Directory.EnumerateDirectories("/proc").Count(p =>
    {
        try
        {
            return File.ReadAllText(Path.Join(p, "cmdline")).Split('\0') is var argv && argv.Contains("serve") && argv.Contains(root);
        }
        catch (IOException)
        {
            return false; // gone meanwhile
        }
    });

    /// <summary>An agent that stops answering, its pipes open (a node behind a link cut without a word), is noticed within
    /// five heartbeats; the daemon says so once, starts another agent and brings over what changed meanwhile.</summary>
    [Fact]
    public async Task AnAgentThatFallsSilentIsNoticedWithinFiveHeartbeatsAndTheDaemonReconnects()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        var target = TestTree.LocalTarget(dir.File("passive")) with { Heartbeat = TimeSpan.FromMilliseconds(200) };
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), target, dir.File("state"), configure: Convergence.AlwaysActive);
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync();
        int silent = daemon.Status().Targets[0].AgentPid!.Value;
        Assert.Equal(0, Syscall.kill(silent, Signum.SIGSTOP));
        try
        {
            var clock = Stopwatch.StartNew();
            File.WriteAllText(daemon.Active("while-silent.conf"), "written while the agent said nothing\n");
            await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.Contains("nothing came from the agent for 1 s (the link or the passive node is down)", StringComparison.Ordinal)),
                "the daemon to notice the silence");
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(10));
            await daemon.Eventually(() => daemon.Status().Targets[0] is { Connected: true, AgentPid: { } pid } && pid != silent, "another agent");
            await daemon.WaitIdenticalAsync();
        }
        finally
        {
            Syscall.kill(silent, Signum.SIGKILL);
        }
    }

    /// <summary>The sender's ssh client stopped dead (its TCP connection open, nothing more on it): the agent that sshd started
    /// on the passive exits by itself within five heartbeats, rather than running on for ever.</summary>
    [Fact]
    public async Task TheAgentOverSshExitsWhenItsSenderFallsSilent()
    {
        using var dir = new TempDir();
        string passive = dir.File("passive-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(passive);
        var target = server.Target("ssh", "--root", passive) with { Heartbeat = TimeSpan.FromMilliseconds(200) };
        var ssh = AgentProcess.Start(target);
        using var session = AgentSession.Open(ssh.Input, ssh.Output, target.Name, ssh.Describe, target.Heartbeat);
        int AgentsServing() => AgentsServingRoot(passive);
        Assert.Equal(1, AgentsServing());
        Assert.Equal(0, Syscall.kill(ssh.Pid, Signum.SIGSTOP));
        try
        {
            var clock = Stopwatch.StartNew();
            while (AgentsServing() > 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
                await Task.Delay(100);
            Assert.Equal(0, AgentsServing());
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(10));
        }
        finally
        {
            Syscall.kill(ssh.Pid, Signum.SIGKILL);
            await ssh.DisposeAsync();
        }
    }

    [Fact]
    public async Task SshKilledMidTransferLeavesTheOldCompleteFileThenConverges()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), server.Target("ssh", "--root", dir.File("passive")), dir.File("state"));
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync();
        byte[] old = File.ReadAllBytes(daemon.Passive("large.bin"));
        int firstAgent = daemon.Status().Targets[0].AgentPid!.Value;

        File.WriteAllBytes(daemon.Active("large.bin"), TestData.Random(new Random(7), 128 << 20));
        await daemon.Eventually(() => Directory.GetFiles(daemon.Passive(""), ".large.bin.hasync-*.tmp").Length > 0, "the transfer to start");
        Process.GetProcessById(firstAgent).Kill();

        Assert.Equal(old, File.ReadAllBytes(daemon.Passive("large.bin"))); // the old file, complete
        await daemon.WaitIdenticalAsync();
        // The daemon's stderr is read on its own; the line may land after the passive is whole.
        await daemon.Eventually(() => daemon.Log.Lines.Any(l => l.Contains("ssh: session lost") && l.Contains("reconnecting")), "the lost session to be logged");
        // The status file is rewritten on its own schedule: it may still name the killed agent for a moment.
        await daemon.Eventually(() => daemon.Status().Targets[0].AgentPid is { } agent && agent != firstAgent, "the status to name the new agent");
        await daemon.Eventually(() => Directory.GetFiles(daemon.Passive(""), "*.hasync-*.tmp").Length == 0, "the abandoned temp file to go");
    }

    [Fact]
    public async Task ChangesMadeWhileTheTargetIsDownArriveWhenItIsBack()
    {
        using var ownServer = new SshServer(); // stopped and started here, so no other test sees it down
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), ownServer.Target("ssh", "--root", dir.File("passive")), dir.File("state"));
        await daemon.WaitConnectedAsync();
        await daemon.WaitIdenticalAsync();

        ownServer.Stop();
        Process.GetProcessById(daemon.Status().Targets[0].AgentPid!.Value).Kill();
        await daemon.Eventually(() => daemon.Status().Targets[0] is { Connected: false, LastError: { } e } && e.Contains("Connection refused"), "a refused reconnect");
        File.WriteAllText(daemon.Active("while-down.conf"), "written while the passive was unreachable\n");
        File.Delete(daemon.Active("bm.ini"));
        TestTree.Chmod(daemon.Active("helper"), "700");
        await daemon.Eventually(() => daemon.Status().Targets[0].Queue == 3, "the three changes to wait in the queue");
        Assert.False(File.Exists(daemon.Passive("while-down.conf")));

        ownServer.Start();
        await daemon.WaitIdenticalAsync();
        await daemon.Eventually(() => daemon.Status().Targets[0] is { Connected: true, Queue: 0 }, "the status to say connected and current");
    }

    [Fact]
    public async Task AKernelQueueOverflowEndsInAFullScanThatConverges()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        var daemon = await DaemonHarness.UnderInotifyLimitAsync("max_queued_events", "1", // a file written is three events: a queue of one overflows whoever reads it
            () => new DaemonHarness(dir.File("active"), dir.File("passive"), server.Target("ssh", "--root", dir.File("passive")), dir.File("state")),
            d => d.WaitConnectedAsync());
        await using (daemon)
        {
            await daemon.WaitIdenticalAsync();
            for (int i = 0; i < 300; i++)
                File.WriteAllText(daemon.Active($"burst-{i:D3}.conf"), $"burst {i}\n");
            await daemon.WaitIdenticalAsync();
            Assert.Contains(daemon.Log.Lines, l => l.Contains("inotify queue overflowed (fs.inotify.max_queued_events = "));
        }
    }

    [Fact]
    public async Task AFullPassiveDiskIsShownAsFailingAtOnceLoggedOnceNotResentUntilThereIsRoomAndHealsWithinARetryDelayOfIt()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        string passive = dir.File("passive");
        Directory.CreateDirectory(passive);
        Tools.Check("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", passive);
        try
        {
            // Asked about every 0.2 s; sent again whatever the room only after a minute, which this test never reaches.
            await using var daemon = new DaemonHarness(dir.File("active"), passive, TestTree.LocalTarget(passive), dir.File("state"),
                options: DaemonHarness.FastRetries with { MaxRetryDelay = TimeSpan.FromMinutes(1) }, configure: Convergence.AlwaysActive);
            await daemon.WaitConnectedAsync();
            await daemon.WaitIdenticalAsync();
            File.WriteAllBytes(Path.Join(passive, "filler"), new byte[1200 << 10]); // outside the watched set: the disk is nearly full

            File.WriteAllBytes(daemon.Active("big.bin"), TestData.Random(new Random(3), 600 << 10));
            var written = Stopwatch.StartNew();
            await daemon.Eventually(() => daemon.Status().Targets[0].Failing is [{ Path: "/etc/bm/big.bin" }], "the push to fail");
            var (code, line) = daemon.Check();
            var seen = written.Elapsed;
            Assert.Equal(1, code);
            Assert.Matches(@"local 1 path\(s\) failing, first /etc/bm/big.bin since [^(]+\(1 try, next (in \d+ s|now)\): /etc/bm/big.bin: sending the file: ", line);
            Assert.Contains("No space left on device", line);
            Assert.Contains("(the passive needs about 673 KiB free for it)", line); // 600 KiB, 1/64 of it, 64 KiB
            Assert.DoesNotContain(".hasync-", line); // the file the admin knows, not the agent's temp file
            Assert.True(seen < TimeSpan.FromSeconds(5), $"check said WARNING {seen.TotalSeconds:F1} s after the write");
            var target = daemon.StatusJson().GetProperty("targets")[0];
            Assert.Equal("failing", target.GetProperty("state").GetString());
            var failingJson = target.GetProperty("failing")[0];
            Assert.Equal("/etc/bm/big.bin", failingJson.GetProperty("path").GetString());
            Assert.Contains("No space left on device", failingJson.GetProperty("error").GetString());

            // Six seconds of a full disk: asked about some 30 times, sent once, refused once, logged once on each side.
            await Task.Delay(TimeSpan.FromSeconds(6));
            var failing = daemon.Status().Targets[0].Failing.Single();
            Assert.Equal(1, failing.Attempts);
            var logged = daemon.Log.Lines.Where(l => l.Contains("/etc/bm/big.bin: sending the file: ", StringComparison.Ordinal)).ToList();
            Assert.True(logged.Count == 1, $"logged {logged.Count} times, not once:\n{string.Join("\n", logged)}");
            var refused = daemon.Log.Lines.Where(l => l.Contains("hasync serve: ", StringComparison.Ordinal) && l.Contains("No space left", StringComparison.Ordinal)).ToList();
            Assert.True(refused.Count == 1, $"the agent refused {refused.Count} times, not once:\n{string.Join("\n", refused)}");
            Assert.Empty(Directory.GetFiles(passive, "*.hasync-*", SearchOption.AllDirectories));

            File.Delete(Path.Join(passive, "filler"));
            var freed = Stopwatch.StartNew();
            await daemon.WaitIdenticalAsync();
            Assert.True(freed.Elapsed < TimeSpan.FromSeconds(10), $"arrived {freed.Elapsed.TotalSeconds:F1} s after the room was made");
            await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after the disk had room again");
        }
        finally
        {
            Tools.Run("umount", [passive]);
        }
    }
}
