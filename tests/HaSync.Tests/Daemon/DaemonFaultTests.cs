using System.Diagnostics;
using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>
/// What breaks in production, made to break for real: the ssh process killed mid-transfer, the target down
/// for a while, the kernel's event queue overflowing. Each time the passive keeps complete files and converges.
/// </summary>
[Collection("daemon")]
public class DaemonFaultTests(SshServer server) : IClassFixture<SshServer>
{
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
        Assert.Contains(daemon.Log.Lines, l => l.Contains("ssh: session lost") && l.Contains("reconnecting"));
        Assert.NotEqual(firstAgent, daemon.Status().Targets[0].AgentPid);
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
        TestTree.Chmod(daemon.Active("helper"), "755");
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
        var daemon = await DaemonHarness.UnderInotifyLimitAsync("max_queued_events", "16",
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
}
