using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using HaSync.Tests.Support;

namespace HaSync.Tests.Cli;

/// <summary><c>hasync resync</c> and <c>hasync diff</c> as an admin or a script runs them: exit codes, JSON, errors.</summary>
public sealed class SyncCliTests
{
    private static readonly string Hasync = Path.Combine(AppContext.BaseDirectory, "hasync");

    private static (int Code, string Stdout, string Stderr) Run(params string[] arguments)
    {
        var (code, stdout, stderr) = Tools.Run(Hasync, arguments);
        return (code, Encoding.UTF8.GetString(stdout), stderr);
    }

    private static string WriteConfig(TempDir dir, string targets)
    {
        File.WriteAllText(dir.File("hasync.yaml"), $"""
            source_root: active
            paths: [/etc/bm]
            redact: ["*.key"]
            state_dir: state
            role: always
            targets:
            {targets}
            """);
        return dir.File("hasync.yaml");
    }

    private const string LocalTarget = """
          - name: local
            transport: local
            command: [hasync, serve, --root, passive, --state, passive-state]
        """;

    /// <summary><see cref="LocalTarget"/> with the agent named by its path, not by the "hasync" that means this binary.</summary>
    private static readonly string LocalTargetByPath = LocalTarget.Replace("hasync, serve", $"{Hasync}, serve");

    /// <summary>The agent makes new files with their mode where it can (no fchmod after): whatever umask it runs under, each
    /// file ends with the active's mode, compared by stat.</summary>
    [Theory]
    [InlineData("022")]
    [InlineData("077")]
    [InlineData("000")]
    public void NewFilesGetTheActivesModeWhateverTheAgentsUmask(string umask)
    {
        using var dir = new TempDir();
        string active = dir.File("active/etc/bm");
        Directory.CreateDirectory(active);
        var modes = new[] { "0644", "0664", "0755", "0600", "0444", "0640", "0777", "0000" };
        foreach (string mode in modes)
        {
            string file = Path.Join(active, $"m{mode}.conf");
            File.WriteAllText(file, $"mode {mode}\n");
            File.SetUnixFileMode(file, (UnixFileMode)Convert.ToInt32(mode, 8));
        }
        Directory.CreateDirectory(dir.File("passive"));
        string agent = $"umask {umask}; exec {Hasync} serve --root {dir.File("passive")} --state {dir.File("passive-state")}";
        string config = WriteConfig(dir, $"""
              - name: local
                transport: local
                command: [/bin/sh, -c, "{agent}"]
            """);

        var resync = Run("resync", "-c", config);
        Assert.True(resync.Code == 0, resync.Stderr);
        foreach (string mode in modes)
            Assert.Equal(Convert.ToInt32(mode, 8), (int)File.GetUnixFileMode(dir.File($"passive/etc/bm/m{mode}.conf")));
        Assert.Empty(TreeOracle.Compare(active, dir.File("passive/etc/bm"))); // the synced path: owners, times, contents too
    }

    [Fact]
    public void ReadingTheActivesFilesLeavesTheirAccessTimes()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, LocalTargetByPath);
        // An access time before the file's mtime: any read (relatime included) would move it to now.
        string file = dir.File("active/etc/bm/bm.ini");
        var accessed = new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastAccessTimeUtc(file, accessed);

        var resync = Run("resync", "-c", config);
        Assert.True(resync.Code == 0, resync.Stderr);
        Assert.Equal(accessed, File.GetLastAccessTimeUtc(file));
        Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(dir.File("passive/etc/bm/bm.ini"))); // it was read and sent
    }

    [Fact]
    public void DiffExitsOneWhenDifferentZeroWhenInSyncAndResyncReports()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, LocalTargetByPath);

        var before = Run("diff", "-c", config);
        Assert.Equal(1, before.Code);
        Assert.Contains("local: /etc/bm/bm.ini: missing on passive", before.Stdout);

        var resync = Run("resync", "-c", config);
        Assert.True(resync.Code == 0, resync.Stderr);
        Assert.Matches(@"local: \d+ scanned, \d+ files sent, .*0 failed; literal [\d.]+ (B|KiB|MiB), matched 0 B, wire [\d.]+ (B|KiB|MiB)", resync.Stdout);

        var after = Run("diff", "-c", config, "--json");
        Assert.Equal(0, after.Code);
        using var json = JsonDocument.Parse(after.Stdout);
        Assert.True(json.RootElement.GetProperty("in_sync").GetBoolean());
        Assert.Equal("local", json.RootElement.GetProperty("target").GetString());
        Assert.Empty(json.RootElement.GetProperty("items").EnumerateArray()); // the identical paths only with --all
        Assert.True(json.RootElement.GetProperty("counts").GetProperty("identical").GetInt32() > 10);
        using var everything = JsonDocument.Parse(Run("diff", "-c", config, "--json", "--all").Stdout);
        var items = everything.RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.All(items, i => Assert.Equal("identical", i.GetProperty("status").GetString()));
        var ini = items.Single(i => i.GetProperty("path").GetString() == "/etc/bm/bm.ini").GetProperty("active");
        Assert.Equal(System.Text.Json.JsonValueKind.Number, ini.GetProperty("size").ValueKind);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", ini.GetProperty("mtime").GetString());

        var again = Run("resync", "-c", config, "--json");
        Assert.True(again.Code == 0, again.Stderr);
        using var summary = JsonDocument.Parse(again.Stdout);
        Assert.Equal((true, 0, 0), (summary.RootElement.GetProperty("in_sync").GetBoolean(), summary.RootElement.GetProperty("files_sent").GetInt32(),
            summary.RootElement.GetProperty("failures").GetArrayLength()));
        Assert.True(summary.RootElement.GetProperty("wire_bytes").GetInt64() > 0);
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive"));
    }

    /// <summary>Both sides keep their hashes across runs (the active's in its state_dir, the agent's in its own), and
    /// neither hides a file rewritten in place with its old size and mtime set back: only its ctime moved.</summary>
    [Fact]
    public void ResyncsKeepHashCachesThatDoNotHideASameSizeRewriteWithItsMtimeSetBack()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, LocalTargetByPath);
        string ini = dir.File("active/etc/bm/bm.ini");
        Thread.Sleep(HaSync.Scanning.HashCache.RacyWindow + TimeSpan.FromMilliseconds(100)); // a file changed within it is not cached
        var first = Run("resync", "-c", config);
        Assert.True(first.Code == 0, first.Stderr);
        Thread.Sleep(HaSync.Scanning.HashCache.RacyWindow + TimeSpan.FromMilliseconds(100)); // the passive's files were just written
        var second = Run("resync", "-c", config); // hashes both sides, now that no file is racy
        Assert.True(second.Code == 0, second.Stderr);
        Assert.True(File.Exists(dir.File("state/active-hashes.bin")), "the active's hash cache");
        Assert.True(File.Exists(dir.File("passive-state/hashes.bin")), "the agent's hash cache");

        Assert.Equal(0, Mono.Unix.Native.Syscall.lstat(ini, out var before));
        byte[] content = File.ReadAllBytes(ini);
        content[0] ^= 0x20; // same size, one letter's case
        File.WriteAllBytes(ini, content);
        var times = new[]
        {
            new Mono.Unix.Native.Timespec { tv_sec = before.st_atime, tv_nsec = before.st_atime_nsec },
            new Mono.Unix.Native.Timespec { tv_sec = before.st_mtime, tv_nsec = before.st_mtime_nsec },
        };
        Assert.Equal(0, Mono.Unix.Native.Syscall.utimensat(Mono.Unix.Native.Syscall.AT_FDCWD, ini, times, 0));
        var third = Run("resync", "-c", config, "--json");
        Assert.True(third.Code == 0, third.Stderr);
        using var summary = JsonDocument.Parse(third.Stdout);
        Assert.Equal(1, summary.RootElement.GetProperty("files_sent").GetInt32());
        Assert.Equal(content, File.ReadAllBytes(dir.File("passive/etc/bm/bm.ini")));
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive"));
    }

    [Fact]
    public void ResyncShowsTheCompareOfBothSidesThenEachPushWithItsBytes()
    {
        using var dir = new TempDir();
        TestTree.Build(dir.File("active"));
        File.WriteAllBytes(dir.File("active/etc/bm/big.bin"), TestData.Random(new Random(5), 3 << 20)); // read and sent in several MiB
        Directory.CreateDirectory(dir.File("passive"));
        string config = WriteConfig(dir, LocalTargetByPath);
        // What the compare must count, found here with the file system's own listing: every entry, and the bytes of the files.
        static IEnumerable<FileSystemInfo> Below(DirectoryInfo d) => // links are entries, never followed
            d.EnumerateFileSystemInfos().SelectMany(i => i is DirectoryInfo { LinkTarget: null } sub ? Below(sub).Prepend(i) : [i]);
        var below = Below(new DirectoryInfo(dir.File("active/etc/bm"))).ToList();
        long fileBytes = below.OfType<FileInfo>().Where(f => f.LinkTarget is null).Sum(f => f.Length);

        var resync = Run("resync", "-c", config); // stdout is not a terminal here: a line per step
        Assert.True(resync.Code == 0, resync.Stderr);
        var lines = resync.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"local: comparing: active {below.Count + 1} entries, {HaSync.Sizes.Human(fileBytes)} hashed, done; passive 0 entries, 0 B hashed, done", lines[0]);
        var pushes = lines.Where(l => l.StartsWith("local: [", StringComparison.Ordinal)).ToList();
        Assert.Equal(below.Count + 1, pushes.Count(l => !l.Contains("] sending ", StringComparison.Ordinal)));
        Assert.Matches($@"^local: \[{below.Count + 1}/{below.Count + 1}\] \w+ /etc/bm/\S+ \({Regex.Escape(HaSync.Sizes.Human(fileBytes))} of {Regex.Escape(HaSync.Sizes.Human(fileBytes))}(, [\d.]+ (B|KiB|MiB|GiB)/s, \d+:\d\d left)?\)$", pushes[^1]);
        Assert.Contains(pushes, l => l.Contains("] whole /etc/bm/big.bin (", StringComparison.Ordinal));
        TestTree.AssertIdentical(dir.File("active"), dir.File("passive"));

        var again = Run("resync", "-c", config); // the passive now lists (and hashes) what the active has
        Assert.True(again.Code == 0, again.Stderr);
        string side = $"{below.Count + 1} entries, {HaSync.Sizes.Human(fileBytes)} hashed, done";
        Assert.Equal($"local: comparing: active {side}; passive {side}", again.Stdout.Split('\n')[0]);
    }

    [Fact]
    public void BadConfigurationAndUnknownTargetExitTwoWithTheReason()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.yaml"), "paths: [/etc/bm]\ntargets:\n  - name: p\n    hots: x\n");
        var diff = Run("diff", "-c", dir.File("bad.yaml"));
        Assert.Equal(2, diff.Code);
        Assert.Contains($"{dir.File("bad.yaml")}:4: unknown key 'hots' at target", diff.Stderr);

        var resync = Run("resync", "-c", dir.File("bad.yaml"));
        Assert.Equal(2, resync.Code);

        string config = WriteConfig(dir, LocalTarget);
        var unknown = Run("diff", "-c", config, "--target", "nope");
        Assert.Equal(2, unknown.Code);
        Assert.Contains("no target named 'nope' (targets: local)", unknown.Stderr);
    }

    [Fact]
    public void AFileTheActiveCannotReadIsNamedAndNothingIsSent()
    {
        // /proc/self/mem fails every read with EIO (permissions would not stop root, who runs these tests).
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("passive"));
        File.WriteAllText(dir.File("hasync.yaml"), $"source_root: /\npaths: [/proc/self/mem]\nstate_dir: state\ntargets:\n  - name: local\n    transport: local\n    command: [{Hasync}, serve, --root, passive, --state, passive-state]\n");

        var diff = Run("diff", "-c", dir.File("hasync.yaml"));
        Assert.Equal(2, diff.Code);
        Assert.Contains("hasync diff: Input/output error : '/proc/self/mem'", diff.Stderr);
        Assert.DoesNotContain("Unhandled exception", diff.Stderr);

        var resync = Run("resync", "-c", dir.File("hasync.yaml"));
        Assert.Equal(1, resync.Code);
        // resync goes on with the rest and leaves the unreadable path alone on the passive (never a delete).
        Assert.Contains("hasync resync: local: /proc/self/mem: cannot read on the active, left as it is on the passive: Input/output error : '/proc/self/mem'", resync.Stderr);
        Assert.DoesNotContain("Unhandled exception", resync.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("passive")));
    }

    [Fact]
    public void UnreachableSshTargetIsNamedWithSshsOwnWords()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("active/etc/bm"));
        string config = WriteConfig(dir, """
              - name: down
                host: 127.0.0.1
                port: 1
                ssh_options: ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
            """);
        var resync = Run("resync", "-c", config);
        Assert.Equal(1, resync.Code);
        Assert.Contains("target down: cannot start a session", resync.Stderr);
        Assert.Contains("Connection refused", resync.Stderr);

        var diff = Run("diff", "-c", config);
        Assert.Equal(2, diff.Code);
        Assert.Contains("target down", diff.Stderr);
    }
}
