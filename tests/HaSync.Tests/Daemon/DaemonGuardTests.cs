using System.Text;
using HaSync.Configuration;
using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>
/// The daemon under the split-brain guard: it pushes only while its role check says active, and a former active that
/// kept running through a failover is refused by the node that took over.
/// </summary>
[Collection("daemon")]
public class DaemonGuardTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    /// <summary>Long enough for several quiet windows, batches and role checks: a daemon that would push has had every chance.</summary>
    private static readonly TimeSpan Chances = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task ADaemonWhoseRoleCommandSaysPassivePushesNothingAndResumesWhenActive()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string flag = dir.File("this-node-holds-the-vip");
        var role = new RoleConfig { Kind = RoleKind.Command, Command = ["test", "-e", flag], Interval = TimeSpan.FromMilliseconds(100) };
        await using var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), TestTree.LocalTarget(dir.File("passive")), dir.File("state"),
            configure: c => c with { Role = role });
        await daemon.Eventually(() => File.Exists(daemon.Config.StatusFile) && daemon.Status().Role.State == "passive", "the daemon to stand by");

        File.WriteAllText(daemon.Active("new.conf"), "written while this node is passive\n");
        await Task.Delay(Chances);
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("passive")));
        Assert.Equal((false, 0), (daemon.Status().Targets[0].Connected, daemon.Status().Targets[0].Queue));
        Assert.Contains(daemon.Log.Lines, l => l == $"Information: passive (role command 'test -e {flag}' exited 1): standing by, not pushing");
        var (code, line) = daemon.Check();
        Assert.Equal((0, $"HASYNC OK - passive node, standing by (role command 'test -e {flag}' exited 1)"), (code, line.Trim()));

        File.WriteAllText(flag, "");                                    // the cluster makes this node active
        await daemon.WaitIdenticalAsync();                              // a guarded resync brings what changed meanwhile
        Assert.True(File.Exists(daemon.Passive("new.conf")));
        await daemon.Eventually(() => daemon.Status().Role is { State: "active", Epoch: 1 }, "the status to show the term");

        File.Delete(flag);                                              // and passive again
        await daemon.Eventually(() => daemon.Status() is { Role.State: "passive", Targets: [{ Connected: false }] }, "the daemon to stand by again");
        File.WriteAllText(daemon.Active("later.conf"), "written after the role moved away\n");
        await Task.Delay(Chances);
        Assert.False(File.Exists(daemon.Passive("later.conf")));
        Assert.Contains(daemon.Log.Lines, l => l.StartsWith($"Warning: no longer active (role command 'test -e {flag}' exited 1)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFormerActiveThatKeptRunningThroughAFailoverIsRefused()
    {
        using var dir = new TempDir();
        string a = dir.File("a"), b = dir.File("b"), aState = dir.File("a.state"), bState = dir.File("b.state");
        TestTree.Build(a);
        Directory.CreateDirectory(b);
        // Node A: its daemon pushes to B's agent. Each node's agent and daemon share the node's state directory.
        await using var nodeA = new DaemonHarness(a, b, TestTree.LocalTarget(b, "--state", bState), aState,
            configure: c => c with { Role = new RoleConfig { Kind = RoleKind.Always } });
        await nodeA.WaitConnectedAsync();
        await nodeA.WaitIdenticalAsync();

        // Failover: A is cut off (its daemon keeps running with its term), B becomes active and pushes its new work to A.
        File.WriteAllText(Path.Join(b, "etc/bm/b-work.conf"), "made on B after the failover\n");
        File.WriteAllText(dir.File("b.yaml"), $"""
            source_root: {b}
            paths: [/etc/bm]
            state_dir: {bState}
            role: always
            targets:
              - name: a
                transport: local
                command: [{Hasync}, serve, --root, {a}, --state, {aState}]
            """);
        var (code, stdout, stderr) = Tools.Run(Hasync, ["resync", "-c", dir.File("b.yaml")]);
        Assert.True(code == 0, $"B's resync: {stderr}\n{Encoding.UTF8.GetString(stdout)}");
        Assert.Equal("made on B after the failover\n", File.ReadAllText(Path.Join(a, "etc/bm/b-work.conf")));
        Assert.Contains("\"number\":2", File.ReadAllText(Path.Join(bState, "epoch.json")));

        // A, still holding epoch 1, pushes a late edit: B's agent refuses it, and keeps refusing the reconnects.
        File.WriteAllText(nodeA.Active("bm.ini"), "[global]\nhost = A's late edit\n");
        await nodeA.Eventually(() => nodeA.Status().Targets[0] is { Fenced: true, LastError: { } e } && e.Contains("refusing epoch 1 of")
            && e.Contains("this node has since accepted epoch 2 of"), "B to refuse A's old term", () => nodeA.Status().Targets[0].LastError ?? "");
        await Task.Delay(Chances);
        Assert.Equal("[global]\nhost = 192.0.2.10\n", File.ReadAllText(Path.Join(b, "etc/bm/bm.ini"))); // B's files are B's
        var (checkCode, line) = nodeA.Check();
        Assert.Equal(2, checkCode);
        Assert.Matches("local refuses this node's epoch since [^:]+:[^:]+:[^:]+: another node has become active", line);
    }
}
