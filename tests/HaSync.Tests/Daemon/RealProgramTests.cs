using HaSync.Tests.Support;

namespace HaSync.Tests.Daemon;

/// <summary>
/// The programs admins really run on these trees (git as etckeeper does, vim in its save styles, dpkg, useradd), each
/// run for real on a watched active while the daemon runs; the passive must then hold what the active holds
/// (<see cref="TreeOracle"/>) and the daemon must say it is healthy. Their write patterns (lock files renamed over,
/// backups, temp names, whole trees swapped by a checkout) are the ones a hand-written edit forgets.
/// </summary>
[Collection("daemon")]
public class RealProgramTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static async Task<DaemonHarness> StartAsync(TempDir dir, string watched = TestTree.Watched)
    {
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        var daemon = new DaemonHarness(dir.File("active"), dir.File("passive"), TestTree.LocalTarget(dir.File("passive")), dir.File("state"),
            exclude: Convergence.Excludes, configure: c => Convergence.AlwaysActive(c) with { Paths = [watched] });
        await daemon.WaitConnectedAsync();
        await Convergence.WaitAsync(daemon, Bound, () => "start-up resync", watched.TrimStart('/'));
        return daemon;
    }

    private static void Shell(string directory, string script) => Tools.Check("sh", "-c", $"cd '{directory}' && {script}");

    [Fact]
    public async Task GitCommitsAndCheckoutsBackAndForthConverge()
    {
        using var dir = new TempDir();
        await using var daemon = await StartAsync(dir);
        Tools.Require("git", "git");
        string bm = daemon.Active("");
        const string git = "git -c user.name=test -c user.email=test@example.org -c core.quotePath=false";
        Shell(bm, $"git init -q -b main . && {git} add -A && {git} commit -qm base");
        await Convergence.WaitAsync(daemon, Bound, () => "git init and first commit");

        // A branch that changes, adds and removes many files and directories.
        var script = new List<string> { $"{git} checkout -q -b feature" };
        for (int i = 0; i < 40; i++)
            script.Add($"mkdir -p gen/d{i % 7}/s{i % 3} && printf 'generated %s\\n' {i} > gen/d{i % 7}/s{i % 3}/f{i}.conf");
        script.Add("seq 1 3000 > conf.d/mail.conf && rm -f nobody.conf nameless.conf empty-file && chmod 755 bm.ini");
        script.Add($"{git} add -A && {git} commit -qm feature");
        Shell(bm, string.Join(" && ", script));
        await Convergence.WaitAsync(daemon, Bound, () => "git commit on a branch");

        Shell(bm, $"{git} checkout -q main");
        await Convergence.WaitAsync(daemon, Bound, () => "git checkout main");
        Assert.False(Directory.Exists(daemon.Passive("gen")), "the branch's directories stayed on the passive after checking out main");

        // Back and forth without a pause: the trees swap under the daemon's scans.
        Shell(bm, $"{git} checkout -q feature && {git} checkout -q main && {git} checkout -q feature");
        await Convergence.WaitAsync(daemon, Bound, () => "git checkout feature, main, feature");
        Assert.True(File.Exists(daemon.Passive("gen/d3/s0/f3.conf")));
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after the checkouts");
    }

    public static TheoryData<string> VimStyles =>
    [
        "set backupcopy=yes writebackup", "set backupcopy=no writebackup", "set backupcopy=auto writebackup",
        "set backupcopy=no backup", "set nowritebackup nobackup",
    ];

    [Theory]
    [MemberData(nameof(VimStyles))]
    public async Task VimSavesConvergeInEachBackupStyle(string settings)
    {
        using var dir = new TempDir();
        await using var daemon = await StartAsync(dir);
        string vim = Tools.Require("vim", "vim");
        // A plain file, one owned by nobody (backupcopy=auto copies for it rather than rename) and a setuid one.
        foreach (string file in new[] { "bm.ini", "nobody.conf", "helper" })
        {
            var (code, _, stderr) = Tools.Run(vim, ["-u", "NONE", "-N", "-Es", "-c", settings, "-c", "$put ='edited by vim: " + settings + "'", "-c", "wq", daemon.Active(file)]);
            Assert.True(code == 0, $"vim ({settings}) on {file} exited {code}: {stderr}");
        }
        await Convergence.WaitAsync(daemon, Bound, () => $"vim saves with '{settings}'");
        foreach (string file in new[] { "bm.ini", "nobody.conf", "helper" })
            Assert.Contains("edited by vim", File.ReadAllText(daemon.Passive(file)), StringComparison.Ordinal);
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => $"after vim with '{settings}'");
    }

    [Fact]
    public async Task DpkgInstallUpgradeAndPurgeOfAPackageShippingFilesInTheTreeConverge()
    {
        using var dir = new TempDir();
        await using var daemon = await StartAsync(dir);
        string dpkgDeb = Tools.Require("dpkg-deb", "dpkg"), dpkg = Tools.Require("dpkg", "dpkg");
        string root = daemon.ActiveRoot;
        foreach (string d in new[] { "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers" })
            Directory.CreateDirectory(Path.Join(root, d));
        File.WriteAllText(Path.Join(root, "var/lib/dpkg/status"), "");

        string Package(int version, Action<string> files)
        {
            string build = dir.File($"pkg{version}");
            Directory.CreateDirectory(Path.Join(build, "DEBIAN"));
            File.WriteAllText(Path.Join(build, "DEBIAN/control"),
                $"Package: hasync-probe\nVersion: {version}\nArchitecture: all\nMaintainer: test <test@example.org>\nDescription: files for the daemon to carry\n");
            files(Path.Join(build, "etc/bm"));
            string deb = dir.File($"hasync-probe_{version}.deb");
            Tools.Check(dpkgDeb, "--root-owner-group", "--build", build, deb);
            return deb;
        }
        string v1 = Package(1, bm =>
        {
            for (int i = 0; i < 20; i++)
            {
                Directory.CreateDirectory(Path.Join(bm, $"probe/d{i % 4}"));
                File.WriteAllText(Path.Join(bm, $"probe/d{i % 4}/f{i}.conf"), $"v1 {i}\n");
            }
            File.WriteAllText(Path.Join(bm, "probe/tool"), "#!/bin/sh\n");
            TestTree.Chmod(Path.Join(bm, "probe/tool"), "755");
        });
        string v2 = Package(2, bm =>
        {
            for (int i = 5; i < 30; i++) // 0-4 dropped, 5-19 changed, 20-29 new, d4 a new directory
            {
                Directory.CreateDirectory(Path.Join(bm, $"probe/d{i % 5}"));
                File.WriteAllText(Path.Join(bm, $"probe/d{i % 5}/f{i}.conf"), $"v2 {i}\n");
            }
            File.WriteAllText(Path.Join(bm, "probe/tool"), "#!/bin/sh\necho v2\n");
            TestTree.Chmod(Path.Join(bm, "probe/tool"), "4755");
        });
        string[] common = [$"--root={root}", "--log=/dev/null"];

        Tools.Check(dpkg, [.. common, "-i", v1]);
        await Convergence.WaitAsync(daemon, Bound, () => "dpkg -i v1");
        Tools.Check(dpkg, [.. common, "-i", v2]); // unpacks as .dpkg-new beside each file, renames them over, removes the dropped ones
        await Convergence.WaitAsync(daemon, Bound, () => "dpkg -i v2 (upgrade)");
        Assert.Equal("v2 7\n", File.ReadAllText(daemon.Passive("probe/d2/f7.conf")));
        Assert.False(File.Exists(daemon.Passive("probe/d1/f1.conf")), "a file the upgrade dropped stayed on the passive");
        Tools.Check(dpkg, [.. common, "--purge", "hasync-probe"]);
        await Convergence.WaitAsync(daemon, Bound, () => "dpkg --purge");
        Assert.False(Directory.Exists(daemon.Passive("probe")), "the purged package's directory stayed on the passive");
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after dpkg");
    }

    [Fact]
    public async Task UseraddUsermodAndUserdelUnderAPrefixConverge()
    {
        using var dir = new TempDir();
        // useradd --prefix edits <prefix>/etc/passwd, group, shadow, gshadow: the daemon watches that /etc here.
        string etc = Path.Join(dir.File("active"), "etc");
        Directory.CreateDirectory(etc);
        foreach (string file in new[] { "passwd", "group", "shadow", "gshadow", "login.defs" })
            File.Copy(Path.Join("/etc", file), Path.Join(etc, file));
        await using var daemon = await StartAsync(dir, watched: "/etc");
        string prefix = daemon.ActiveRoot;

        Tools.Check(Tools.Require("useradd", "passwd"), "--prefix", prefix, "-u", "4300", "-U", "-s", "/bin/sh", "hasync-alice");
        Tools.Check("useradd", "--prefix", prefix, "-u", "4301", "-U", "hasync-bob");
        await Convergence.WaitAsync(daemon, Bound, () => "useradd twice", "etc");
        Assert.Contains("hasync-alice:x:4300:4300", File.ReadAllText(Path.Join(daemon.PassiveRoot, "etc/passwd")), StringComparison.Ordinal);

        Tools.Check("usermod", "--prefix", prefix, "-c", "Alice", "-aG", "hasync-bob", "hasync-alice");
        Tools.Check("userdel", "--prefix", prefix, "hasync-bob");
        await Convergence.WaitAsync(daemon, Bound, () => "usermod, userdel", "etc");
        Assert.DoesNotContain("hasync-bob:", File.ReadAllText(Path.Join(daemon.PassiveRoot, "etc/passwd")), StringComparison.Ordinal);
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), () => "after useradd");
    }
}
