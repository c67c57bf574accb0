using System.Diagnostics;
using System.Text;
using HaSync.Daemon;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>
/// <c>hasync daemon</c> as systemd runs it (a process, signals) and <c>hasync status</c>/<c>check</c> as an admin
/// and a monitoring system read it.
/// </summary>
[Collection("daemon")]
public class DaemonCliTests(SshServer server) : IClassFixture<SshServer>
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private sealed class DaemonProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _stderr = new();

        /// <summary>Starts <c>hasync daemon -c CONFIG</c>, inside network namespace <paramref name="netns"/> when given
        /// (<c>ip netns exec</c> execs it: the pid is the daemon's).</summary>
        public DaemonProcess(string config, string? netns = null)
        {
            string[] daemon = ["daemon", "-c", config];
            var start = netns is null
                ? new ProcessStartInfo(Hasync, daemon)
                : new ProcessStartInfo("ip", ["netns", "exec", netns, Hasync, .. daemon]);
            (start.RedirectStandardError, start.RedirectStandardOutput) = (true, true);
            _process = Process.Start(start)!;
            _process.ErrorDataReceived += (_, e) => { lock (_stderr) _stderr.AppendLine(e.Data); };
            _process.BeginErrorReadLine();
        }

        public int Pid => _process.Id;
        public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

        public void Signal(string signal) => Tools.Check("kill", $"-{signal}", Pid.ToString());

        public int WaitForExit()
        {
            Assert.True(_process.WaitForExit(TimeSpan.FromSeconds(30)), $"the daemon did not exit: {Stderr}");
            _process.WaitForExit(); // drain stderr
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
                _process.Kill();
            _process.Dispose();
        }
    }

    private string WriteConfig(TempDir dir)
    {
        string config = dir.File("hasync.yaml");
        File.WriteAllText(config, $"""
            source_root: active
            paths: [/etc/bm]
            exclude: ["*.swp"]
            state_dir: state
            role: always
            targets:
              - name: passive
                host: 127.0.0.1
                port: {server.Port}
                user: {SshServer.User}
                identity_file: {server.IdentityFile}
                ssh_options: [{string.Join(", ", SshServer.TrustOptions)}]
                command: [{Hasync}, serve, --root, {dir.File("passive")}, --state, {dir.File("passive-state")}]
            """);
        return config;
    }

    private static (int Code, string Stdout) Run(params string[] arguments)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, arguments);
        return (code, Encoding.UTF8.GetString(stdout) + stderr);
    }

    private static async Task Until(Func<bool> condition, string what, Func<string> context)
    {
        var deadline = DateTime.UtcNow + DaemonHarness.Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}: {context()}");
            await Task.Delay(20);
        }
    }

    private static bool Connected(string statusFile)
    {
        try
        {
            return StatusFile.Read(statusFile).Targets[0].Connected;
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task KilledAndRestartedTheDaemonConvergesAndCheckSaysWhatHappened()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir), status = dir.File("state/status.json");
        string bm = dir.File("active/etc/bm"), passiveBm = dir.File("passive/etc/bm");

        var unknown = Run("check", "-c", config); // no status yet
        Assert.Equal(3, unknown.Code);
        Assert.StartsWith($"HASYNC UNKNOWN - no daemon status at {status}: is hasync daemon running", unknown.Stdout);
        using (var first = new DaemonProcess(config))
        {
            await Until(() => Connected(status), "the daemon to connect", () => first.Stderr);
            var ok = Run("check", "-c", config);
            Assert.True(ok.Code == 0, ok.Stdout);
            Assert.StartsWith("HASYNC OK - 1 target(s) in sync | 'passive_lag'=0.000s;30;120;0 'passive_queue'=0;;;0", ok.Stdout);
            Assert.Contains("passive: in sync, connected since", Run("status", "-c", config).Stdout);

            first.Signal("KILL");
            Assert.Equal(137, first.WaitForExit());
        }
        var dead = Run("check", "-c", config);
        Assert.Equal(2, dead.Code);
        Assert.Contains("HASYNC CRITICAL - daemon not running: pid", dead.Stdout);
        var deadStatus = Run("status", "-c", config);
        Assert.Equal(3, deadStatus.Code);
        Assert.Contains("passive: unknown: the daemon is not running, nothing is being pushed", deadStatus.Stdout); // no "connected", no "in sync"
        Assert.DoesNotContain("connected since", deadStatus.Stdout);
        Assert.Contains("\"state\": \"stopped\"", Run("status", "-c", config, "--json").Stdout);

        File.WriteAllText(Path.Join(bm, "while-dead.conf"), "written while no daemon ran\n");
        File.Delete(Path.Join(bm, "bm.ini"));
        using var second = new DaemonProcess(config);
        await Until(() => File.Exists(Path.Join(passiveBm, "while-dead.conf")) && !File.Exists(Path.Join(passiveBm, "bm.ini")),
            "the restarted daemon's resync", () => second.Stderr);

        // A second daemon on the same state directory is refused: it would push everything twice.
        var twin = Run("daemon", "-c", config);
        Assert.Equal(2, twin.Code);
        Assert.Contains($"another hasync daemon (pid {second.Pid}) already runs with the state directory {dir.File("state")}", twin.Stdout);

        // SIGTERM inside the quiet window: the change is pushed before the daemon exits 0.
        File.WriteAllText(Path.Join(bm, "last-second.conf"), "written just before SIGTERM\n");
        second.Signal("TERM");
        Assert.Equal(0, second.WaitForExit());
        Assert.Equal("written just before SIGTERM\n", File.ReadAllText(Path.Join(passiveBm, "last-second.conf")));
        Assert.Contains("stopping: pushing", second.Stderr);
        var stopped = Run("status", "-c", config);
        Assert.Equal(3, stopped.Code);
        Assert.Contains("daemon: stopped at", stopped.Stdout);
        Assert.StartsWith("HASYNC CRITICAL - daemon stopped at", Run("check", "-c", config).Stdout);
    }

    [Fact]
    public async Task ATargetThatStaysDownIsWarningThenCritical()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        string config = WriteConfig(dir);
        File.WriteAllText(config, File.ReadAllText(config).Replace($"port: {server.Port}", "port: 1"));
        string status = dir.File("state/status.json");
        using var daemon = new DaemonProcess(config);
        await Until(() => File.Exists(status) && StatusFile.Read(status).Targets[0].LastError is not null, "a failed connection", () => daemon.Stderr);

        var warning = Run("check", "-c", config, "--warn", "30", "--crit", "3600");
        Assert.True(warning.Code == 1, warning.Stdout);
        Assert.StartsWith("HASYNC WARNING - passive disconnected since", warning.Stdout);
        Assert.Contains("Connection refused", warning.Stdout);
        var critical = Run("check", "-c", config, "--warn", "0", "--crit", "0.01");
        Assert.Equal(2, critical.Code);
        var backwards = Run("check", "-c", config, "--warn", "200", "--crit", "100");
        Assert.Equal((3, "HASYNC UNKNOWN - --warn 200 must be below --crit 100\n"), (backwards.Code, backwards.Stdout));
        Assert.Matches(@"passive: disconnected since [^;]+, (next try in \d+ (s|min)|trying now): session: ", Run("status", "-c", config).Stdout);
        Assert.Matches(@"\n  last error \(\d+ s ago\): session: target passive: cannot start a session: .*Connection refused", Run("status", "-c", config).Stdout);
        var json = Run("status", "-c", config, "--json");
        Assert.Contains("\"connected\": false", json.Stdout);
        Assert.Contains("\"state\": \"reconnecting\"", json.Stdout);
        Assert.Contains("port 1: Connection refused", daemon.Stderr);
    }

    /// <summary>A pair on one machine: agent spawned locally, this node's role from <paramref name="role"/>.</summary>
    private static string WriteLocalConfig(TempDir dir, string role)
    {
        string config = dir.File("local.yaml");
        File.WriteAllText(config, $"""
            source_root: active
            paths: [/etc/bm]
            state_dir: state
            role: {role}
            targets:
              - name: passive
                transport: local
                command: [{Hasync}, serve, --root, passive, --state, passive-state]
            """);
        return config;
    }

    private static DaemonSnapshot? Snapshot(string statusFile)
    {
        try
        {
            return File.Exists(statusFile) ? StatusFile.Read(statusFile) : null;
        }
        catch (IOException)
        {
            return null; // being replaced right now
        }
    }

    [Fact]
    public async Task TheDaemonPushesWhileTheVipIsOnThisNodeAndStandsByWhenItMoves()
    {
        // keepalived moving the floating address, for real: the daemon runs in a network namespace of its own, whose
        // loopback gets and loses the address.
        string netns = "hasync-test-" + Guid.NewGuid().ToString("N")[..8];
        Tools.Check("ip", "netns", "add", netns);
        try
        {
            Tools.Check("ip", "-n", netns, "link", "set", "lo", "up");
            using var dir = new TempDir();
            TestTree.Build(dir.File("active"));
            Directory.CreateDirectory(dir.File("passive"));
            string config = WriteLocalConfig(dir, "{ vip: 192.0.2.10, check_ms: 200 }"), status = dir.File("state/status.json");
            using var daemon = new DaemonProcess(config, netns);
            await Until(() => Snapshot(status) is { Role.State: "passive" }, "the daemon to stand by", () => daemon.Stderr);
            Assert.Contains("passive (vip 192.0.2.10 is not on any local interface): standing by, not pushing", daemon.Stderr);
            await Task.Delay(TimeSpan.FromSeconds(1)); // several role checks: none may push
            Assert.Empty(Directory.GetFileSystemEntries(dir.File("passive")));
            Assert.StartsWith("HASYNC OK - passive node, standing by (vip 192.0.2.10 is not on any local interface)", Run("check", "-c", config).Stdout);

            Tools.Check("ip", "-n", netns, "addr", "add", "192.0.2.10/32", "dev", "lo");        // failover to this node
            await Until(() => File.Exists(dir.File("passive/etc/bm/bm.ini")) && Snapshot(status) is { Role.State: "active", Targets: [{ Connected: true }] },
                "the guarded resync", () => daemon.Stderr);
            TestTree.AssertIdentical(dir.File("active"), dir.File("passive"));
            Assert.Contains("active (vip 192.0.2.10 is on lo): took epoch 1", daemon.Stderr);

            Tools.Check("ip", "-n", netns, "addr", "del", "192.0.2.10/32", "dev", "lo");        // and away again
            await Until(() => Snapshot(status) is { Role.State: "passive", Targets: [{ Connected: false }] }, "the daemon to stand by again", () => daemon.Stderr);
            File.WriteAllText(dir.File("active/etc/bm/after.conf"), "written once the address had moved away\n");
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.False(File.Exists(dir.File("passive/etc/bm/after.conf")));
            Assert.Contains("passive: standing by: this node is not the active one", Run("status", "-c", config).Stdout);
            daemon.Signal("TERM");
            Assert.Equal(0, daemon.WaitForExit());
        }
        finally
        {
            Tools.Run("ip", ["netns", "del", netns]);
        }
    }

    [Fact]
    public async Task ResolveSettlesAConflictAndTellsTheRunningDaemon()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteLocalConfig(dir, "always"), status = dir.File("state/status.json");
        using var daemon = new DaemonProcess(config);
        await Until(() => Snapshot(status) is { Targets: [{ Connected: true }] }, "the daemon to connect", () => daemon.Stderr);

        File.WriteAllText(dir.File("passive/etc/bm/bm.ini"), "[global]\nhost = fixed by hand on the passive\n");
        File.WriteAllText(dir.File("active/etc/bm/bm.ini"), "[global]\nhost = 192.0.2.30\n");
        await Until(() => Snapshot(status) is { Targets: [{ Conflicts: [{ Path: "/etc/bm/bm.ini" }] }] }, "the conflict to show", () => daemon.Stderr);
        Assert.Contains("CONFLICT /etc/bm/bm.ini (since", Run("status", "-c", config).Stdout);
        Assert.Equal(2, Run("check", "-c", config).Code);

        var resolve = Run("resolve", "/etc/bm/bm.ini", "--take", "active", "-c", config);
        Assert.True(resolve.Code == 0, resolve.Stdout);
        Assert.Contains($"told the daemon (pid {daemon.Pid}) to retry now", resolve.Stdout);
        await Until(() => Snapshot(status) is { Targets: [{ Conflicts: [] }] }, "the daemon to clear the conflict", () => daemon.Stderr);
        Assert.Contains("SIGHUP: checking the role and retrying failed paths and conflicts now", daemon.Stderr);
        Assert.Equal("[global]\nhost = 192.0.2.30\n", File.ReadAllText(dir.File("passive/etc/bm/bm.ini")));
        Assert.StartsWith("HASYNC OK", Run("check", "-c", config).Stdout);
    }
}
