using System.Text;
using System.Text.Json;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>
/// The split-brain guard as an admin meets it, through the real binary and agent: a change made on the passive is
/// kept and reported, never overwritten; only --force or resolve settles it; a node that is not active does not push.
/// </summary>
public sealed class GuardCliTests : IDisposable
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");
    private readonly TempDir _dir = new();

    public GuardCliTests()
    {
        TestTree.Build(_dir.File("active"));
        Directory.CreateDirectory(_dir.File("passive"));
    }

    public void Dispose() => _dir.Dispose();

    private string Active(string relative) => _dir.File("active/etc/bm/" + relative);
    private string Passive(string relative) => _dir.File("passive/etc/bm/" + relative);
    private string CopyOf(string relative) => _dir.File("passive-state/conflicts/etc/bm/" + relative);

    private string Config(string role = "always")
    {
        File.WriteAllText(_dir.File("hasync.yaml"), $"""
            source_root: active
            paths: [/etc/bm]
            redact: ["*.key"]
            state_dir: state
            role: {role}
            targets:
              - name: local
                transport: local
                command: [{Hasync}, serve, --root, passive, --state, passive-state]
            """);
        return _dir.File("hasync.yaml");
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] arguments)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, arguments);
        return (code, Encoding.UTF8.GetString(stdout), stderr);
    }

    private static void Succeeds((int Code, string Stdout, string Stderr) run) =>
        Assert.True(run.Code == 0, $"exit {run.Code}\n{run.Stdout}\n{run.Stderr}");

    [Fact]
    public void ALocalEditOnThePassiveIsKeptAndReportedAndForceSettlesIt()
    {
        string config = Config();
        Succeeds(Run("resync", "-c", config));
        File.WriteAllText(Passive("bm.ini"), "[global]\nhost = edited on the passive during an incident\n");
        File.WriteAllText(Active("bm.ini"), "[global]\nhost = 192.0.2.20\n");
        File.AppendAllText(Active("helper"), "# a change the passive did not touch\n");

        var resync = Run("resync", "-c", config);
        Assert.Equal(1, resync.Code);
        Assert.Contains($"hasync resync: local: CONFLICT /etc/bm/bm.ini: {Passive("bm.ini")}: changed on this node since HaSync last wrote it; " +
                        $"left as it is; the active's version is at {CopyOf("bm.ini")}", resync.Stderr);
        Assert.Contains("1 conflict(s) left as they are on the passive; settle each with 'hasync resolve PATH --take active|passive'", resync.Stderr);
        Assert.Equal("[global]\nhost = edited on the passive during an incident\n", File.ReadAllText(Passive("bm.ini"))); // intact
        Assert.Equal(File.ReadAllText(Active("bm.ini")), File.ReadAllText(CopyOf("bm.ini")));                             // the incoming version, kept
        Assert.Equal(File.ReadAllText(Active("helper")), File.ReadAllText(Passive("helper")));                            // the rest went on

        var diff = Run("diff", "-c", config, "--json");
        Assert.Equal(1, diff.Code);
        using (var json = JsonDocument.Parse(diff.Stdout))
        {
            var item = json.RootElement.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("path").GetString() == "/etc/bm/bm.ini");
            Assert.Equal(("conflict", "changed on the passive since HaSync last wrote it"), (item.GetProperty("status").GetString(), item.GetProperty("conflict").GetString()));
            Assert.Equal(1, json.RootElement.GetProperty("counts").GetProperty("conflict").GetInt32());
        }
        Assert.Contains("local: /etc/bm/bm.ini: CONFLICT: changed on the passive since HaSync last wrote it; content", Run("diff", "-c", config).Stdout);

        var force = Run("resync", "-c", config, "--force");
        Succeeds(force);
        Assert.Contains("1 files sent", force.Stdout);
        TestTree.AssertIdentical(_dir.File("active"), _dir.File("passive"));
        Assert.False(File.Exists(CopyOf("bm.ini")));                                                                     // settled: the copy goes
        Succeeds(Run("resync", "-c", config));                                                                           // and it is HaSync's again
    }

    [Fact]
    public void OnFirstContactADifferingFileIsAConflictAndIdenticalOnesAreAdopted()
    {
        string config = Config();
        Directory.CreateDirectory(_dir.File("passive/etc/bm"));
        File.Copy(Active("helper"), Passive("helper"));                                   // the same content, put there by hand
        TestTree.Chmod(Passive("helper"), "644");                                         // with another mode
        Tools.Check("cp", "-a", Active("nobody.conf"), Passive("nobody.conf"));           // the same file, owner and times too
        File.WriteAllText(Passive("bm.ini"), "[global]\nhost = this node's own\n");       // different content
        File.WriteAllText(Passive("stray.conf"), "only on the passive\n");                // an extra HaSync never wrote

        var first = Run("resync", "-c", config);
        Assert.Equal(1, first.Code);
        Assert.Contains($"CONFLICT /etc/bm/bm.ini: {Passive("bm.ini")}: differs from the active's and was never written by HaSync (first contact; seed with 'hasync resync --force')", first.Stderr);
        Assert.Contains($"CONFLICT /etc/bm/stray.conf: {Passive("stray.conf")}: differs from the active's and was never written by HaSync", first.Stderr);
        Assert.Contains("not deleted, though it is gone on the active", first.Stderr);
        // helper: same content, its mode put right; /etc/bm: its time put right; nobody.conf: identical; all recorded as HaSync's.
        Assert.Matches(@"2 metadata fixed, 0 deleted, 1 adopted, 2 conflicts, 0 failed", first.Stdout);
        Assert.Equal("[global]\nhost = this node's own\n", File.ReadAllText(Passive("bm.ini")));
        Assert.True(File.Exists(Passive("stray.conf")));

        Succeeds(Run("resync", "-c", config, "--force"));
        TestTree.AssertIdentical(_dir.File("active"), _dir.File("passive"));
    }

    [Fact]
    public void ResolveTakesEitherSide()
    {
        string config = Config();
        Succeeds(Run("resync", "-c", config));
        File.WriteAllText(Passive("bm.ini"), "passive's version\n");
        File.WriteAllText(Active("bm.ini"), "active's version\n");
        Assert.Equal(1, Run("resync", "-c", config).Code);

        var passive = Run("resolve", "/etc/bm/bm.ini", "--take", "passive", "-c", config);
        Succeeds(passive);
        Assert.Contains("local: /etc/bm/bm.ini: settled, the passive's copy is on both nodes", passive.Stdout);
        Assert.Equal("passive's version\n", File.ReadAllText(Active("bm.ini")));
        TestTree.AssertIdentical(_dir.File("active"), _dir.File("passive"));
        Assert.False(File.Exists(CopyOf("bm.ini")));

        File.WriteAllText(Passive("bm.ini"), "edited on the passive again\n");
        File.WriteAllText(Active("bm.ini"), "the active's word\n");
        var active = Run("resolve", "/etc/bm/bm.ini", "--take", "active", "-c", config);
        Succeeds(active);
        Assert.Equal("the active's word\n", File.ReadAllText(Passive("bm.ini")));
        Succeeds(Run("resync", "-c", config)); // no conflict left

        var outside = Run("resolve", "/etc/passwd", "--take", "active", "-c", config);
        Assert.Equal(2, outside.Code);
        Assert.Contains("/etc/passwd: not in the watched set", outside.Stderr);
    }

    [Theory]
    [InlineData("{ command: [sh, -c, 'echo standby; exit 1'] }", "role command 'sh -c echo standby; exit 1' exited 1: standby")]
    [InlineData("{ vip: 192.0.2.77 }", "vip 192.0.2.77 is not on any local interface")]
    [InlineData("{ command: [/nonexistent/crm_resource] }", "role command '/nonexistent/crm_resource' cannot start")]
    public void ResyncRefusesOnANodeThatIsNotActiveUnlessForced(string role, string why)
    {
        string config = Config(role);
        var refused = Run("resync", "-c", config);
        Assert.Equal(3, refused.Code);
        Assert.Contains($"hasync resync: refusing to push: this node is not the active one ({why}", refused.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.File("passive")));

        var forced = Run("resync", "-c", config, "--force");
        Succeeds(forced);
        Assert.Contains("going on because of --force", forced.Stderr);
        TestTree.AssertIdentical(_dir.File("active"), _dir.File("passive"));
    }

    [Theory]
    [InlineData("{ vip: 127.0.0.1 }")]
    [InlineData("{ command: ['true'] }")]
    public void ResyncRunsOnTheActiveNode(string role) => Succeeds(Run("resync", "-c", Config(role)));
}
