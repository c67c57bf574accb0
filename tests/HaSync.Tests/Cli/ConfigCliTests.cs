using System.Text;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary><c>hasync config check</c>, and a listed path that does not exist, as an admin meets them: the check before a
/// restart, then what <c>diff</c>, <c>status</c> and <c>check</c> say while the daemon runs.</summary>
[Collection("daemon")]
public sealed class ConfigCliTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static (int Code, string Stdout, string Stderr) Run(params string[] arguments)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, arguments);
        return (code, Encoding.UTF8.GetString(stdout), stderr);
    }

    private static string WriteConfig(TempDir dir, string paths, string daemon = "")
    {
        File.WriteAllText(dir.File("hasync.yaml"), $"""
            source_root: active
            paths: {paths}
            state_dir: state
            role: always
            {daemon}
            targets:
              - name: local
                transport: local
                command: [{Hasync}, serve, --root, passive, --state, passive-state]
            """);
        return dir.File("hasync.yaml");
    }

    [Fact]
    public void ConfigCheckSaysValidWarnsOfAMissingPathAndRefusesAnUnwritableLogFile()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("active/etc/bm"));
        File.WriteAllText(dir.File("active/etc/aliases"), "root: admin\n");

        var valid = Run("config", "check", "-c", WriteConfig(dir, "[/etc/bm, /etc/aliases]"));
        Assert.True(valid.Code == 0, valid.Stderr);
        Assert.Equal($"{dir.File("hasync.yaml")}: valid: 2 path(s), 1 target(s) (local)\n", valid.Stdout);

        var typo = Run("config", "check", "-c", WriteConfig(dir, "[/etc/aliases, /etc/bm-typo]"));
        Assert.Equal(1, typo.Code);
        Assert.Contains($"hasync config check: warning: {dir.File("hasync.yaml")}: paths: /etc/bm-typo does not exist on this node (under {dir.File("active")}); it is synced once it appears", typo.Stderr);

        var log = Run("config", "check", "-c", WriteConfig(dir, "[/etc/bm]", "daemon:\n  log_file: /proc/hasync.log"));
        Assert.Equal(2, log.Code);
        Assert.Contains("daemon.log_file /proc/hasync.log: cannot be written", log.Stderr);
        var daemon = Tools.Run(Hasync, ["daemon", "-c", dir.File("hasync.yaml")], timeout: TimeSpan.FromSeconds(30));
        Assert.Equal(2, daemon.ExitCode); // not a daemon running without the log it was told to keep
        Assert.Contains("daemon.log_file /proc/hasync.log: cannot be written", daemon.Stderr);

        var bad = Run("config", "check", "-c", WriteConfig(dir, "[/etc/bm]\nexclude: [\"[bad\"]"));
        Assert.Equal(2, bad.Code);
        Assert.Contains("hasync.yaml:3: exclude pattern '[bad'", bad.Stderr);
    }

    [Fact]
    public async Task AListedPathMissingOnTheActiveIsWarnedOfUntilItAppearsAndIsThenSynced()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("active/etc"));
        File.WriteAllText(dir.File("active/etc/aliases"), "root: admin\n");
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, "[/etc/aliases, /etc/bm-typo]");
        Assert.Equal(0, Run("resync", "-c", config).Code);

        var diff = Run("diff", "-c", config);
        Assert.Equal(1, diff.Code); // not "in sync (1 paths)": what was listed is not all being synced
        Assert.Contains("local: /etc/bm-typo: listed in paths, but on neither node (a typo, or not installed yet?)", diff.Stdout);

        var start = new System.Diagnostics.ProcessStartInfo(Hasync, ["daemon", "-c", config]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var daemon = System.Diagnostics.Process.Start(start)!;
        var stderr = daemon.StandardError.ReadToEndAsync();
        try
        {
            string status = dir.File("state/status.json");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!(File.Exists(status) && Run("status", "-c", config).Stdout.Contains("local: in sync")) && clock.Elapsed < TimeSpan.FromSeconds(30))
                await Task.Delay(100);
            Assert.Contains("  missing on the active: /etc/bm-typo (listed in paths; synced once it appears)", Run("status", "-c", config).Stdout);
            var check = Run("check", "-c", config);
            Assert.Equal(1, check.Code);
            Assert.Contains("/etc/bm-typo (listed in paths) does not exist on the active", check.Stdout);

            Directory.CreateDirectory(dir.File("active/etc/bm-typo"));
            File.WriteAllText(dir.File("active/etc/bm-typo/bm.ini"), "[global]\n");
            clock.Restart();
            while (Run("check", "-c", config).Code != 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
                await Task.Delay(200);
            Assert.Equal(0, Run("check", "-c", config).Code);
            Assert.Equal("[global]\n", File.ReadAllText(dir.File("passive/etc/bm-typo/bm.ini")));
        }
        finally
        {
            daemon.Kill();
            await daemon.WaitForExitAsync();
        }
        Assert.Contains("paths: /etc/bm-typo does not exist on this node", await stderr); // said at start-up
    }
}
