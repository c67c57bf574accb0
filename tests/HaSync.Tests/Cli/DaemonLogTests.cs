using System.Text.RegularExpressions;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary>The daemon's log lines as an admin reads them: UTC times that say so on a terminal or in a file, and under
/// journald a syslog priority per line and no time of its own (journald adds one; <c>journalctl -p</c> filters by it).</summary>
[Collection("daemon")]
public sealed class DaemonLogTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    /// <summary>Runs the daemon for two seconds with its stderr in <c>stderr.log</c>; with <paramref name="asJournal"/>,
    /// JOURNAL_STREAM names that very file, as systemd names the journal's socket. Returns the lines it wrote there and
    /// in its log file.</summary>
    private static (string[] Stderr, string[] LogFile) RunDaemon(TempDir dir, bool asJournal)
    {
        Directory.CreateDirectory(dir.File("active/etc/bm"));
        File.WriteAllText(dir.File("active/etc/bm/a.conf"), "a\n");
        Directory.CreateDirectory(dir.File("passive"));
        File.WriteAllText(dir.File("hasync.yaml"), $"""
            source_root: {dir.File("active")}
            paths: [/etc/bm]
            state_dir: {dir.File("state")}
            role: always
            daemon:
              log_file: {dir.File("daemon.log")}
            targets:
              - name: local
                transport: local
                command: [{Hasync}, serve, --root, {dir.File("passive")}, --state, {dir.File("passive-state")}]
            """);
        File.WriteAllText(dir.File("stderr.log"), "");
        var environment = new Dictionary<string, string>();
        if (asJournal)
        {
            Assert.Equal(0, Mono.Unix.Native.Syscall.stat(dir.File("stderr.log"), out var st));
            environment["JOURNAL_STREAM"] = $"{st.st_dev}:{st.st_ino}";
        }
        // SIGTERM after two seconds: the daemon stops as systemd stops it.
        Tools.Run("timeout", ["-s", "TERM", "2", "/bin/sh", "-c", $"exec '{Hasync}' daemon -c '{dir.File("hasync.yaml")}' 2>>'{dir.File("stderr.log")}'"],
            environment: environment, timeout: TimeSpan.FromSeconds(60));
        return (File.ReadAllLines(dir.File("stderr.log")), File.ReadAllLines(dir.File("daemon.log")));
    }

    [Fact]
    public void OnAFileOrATerminalEachLineHasItsUtcTimeAndLevel()
    {
        using var dir = new TempDir();
        var (stderr, logFile) = RunDaemon(dir, asJournal: false);
        var line = new Regex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z (DBG|INF|WRN|ERR|CRT) \S");
        Assert.Contains(stderr, l => l.Contains("INF local: connected; start-up resync", StringComparison.Ordinal));
        Assert.All(stderr.Where(l => !l.StartsWith("[local]", StringComparison.Ordinal)), l => Assert.Matches(line, l)); // [local]: the agent's own stderr, passed on
        Assert.Equal(stderr.Where(l => line.IsMatch(l)), logFile.Where(l => line.IsMatch(l)));
    }

    [Fact]
    public void UnderJournaldEachLineCarriesItsPriorityAndNoTimeAndTheFileKeepsTheTimes()
    {
        using var dir = new TempDir();
        var (stderr, logFile) = RunDaemon(dir, asJournal: true);
        Assert.Contains("<6>local: connected; start-up resync: 2 scanned, 1 files sent, 1 dirs/links made, 0 metadata fixed, 0 deleted, 0 failed",
            string.Join('\n', stderr));
        Assert.All(stderr, l => Assert.Matches(@"^<[2-7]>", l));
        Assert.DoesNotContain(stderr, l => Regex.IsMatch(l, @"\d\d:\d\d:\d\d"));
        Assert.Contains(logFile, l => Regex.IsMatch(l, @"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z INF local: connected; start-up resync"));
    }
}
