using System.Diagnostics;
using System.Globalization;
using HaSync.Configuration;
using HaSync.Tests.Support;
using Mono.Unix.Native;
using Xunit.Abstractions;

namespace HaSync.Tests.Daemon;

/// <summary>
/// Random churn on a watched tree while the daemon runs: creates, rewrites, renames of files and directories, links,
/// modes, owners, deletes, in bursts that coalesce and race with the daemon's scans. Afterwards the passive must hold
/// what the active holds (by <see cref="TreeOracle"/>) within a bounded time and the daemon must say it is healthy.
/// A failure prints the seed; <c>HASYNC_CHURN_SEED</c>, <c>HASYNC_CHURN_SECONDS</c> and <c>HASYNC_CHURN_OPS</c> replay
/// or lengthen a run (tests/bench/churn-soak.sh).
/// </summary>
[Collection("daemon")]
public class ChurnTests(SshServer server, ITestOutputHelper output) : IClassFixture<SshServer>
{
    public static TheoryData<string, int> Runs => new()
    {
        { "local", 1 }, { "local", 2 }, { "local", 3 },
        { "ssh", 11 }, { "ssh", 12 },
    };

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task RandomChurnConvergesAndLeavesTheDaemonHealthy(string transport, int defaultSeed)
    {
        int seed = Setting("HASYNC_CHURN_SEED", defaultSeed);
        var duration = TimeSpan.FromSeconds(Setting("HASYNC_CHURN_SECONDS", 12));
        int maxOps = Setting("HASYNC_CHURN_OPS", 2000);
        output.WriteLine($"churn: transport {transport}, seed {seed}, {duration.TotalSeconds} s, at most {maxOps} ops (replay: HASYNC_CHURN_SEED={seed})");

        using var dir = new TempDir();
        string active = dir.File("active"), passive = dir.File("passive");
        TestTree.Build(active);
        Directory.CreateDirectory(passive);
        Directory.CreateDirectory(Path.Join(active, "etc/outside"));
        var generator = new ChurnGenerator(Path.Join(active, "etc/bm"), Path.Join(active, "etc/outside"), seed);
        generator.Seed();

        TargetConfig target = transport == "ssh" ? server.Target("ssh", "--root", passive) : TestTree.LocalTarget(passive);
        await using var daemon = new DaemonHarness(active, passive, target, dir.File("state"), exclude: Convergence.Excludes,
            configure: Convergence.AlwaysActive);
        await daemon.WaitConnectedAsync();
        string Context() => $"transport {transport}, seed {seed} (replay: HASYNC_CHURN_SEED={seed}), {generator.Done} ops; last ops:\n  {string.Join("\n  ", generator.LastOps(50))}";
        await Convergence.WaitAsync(daemon, TimeSpan.FromSeconds(30), () => "start-up resync; " + Context());

        var churn = Stopwatch.StartNew();
        await generator.RunAsync(duration, maxOps);
        output.WriteLine($"churn: {generator.Done} ops done in {churn.Elapsed.TotalSeconds:F1} s ({generator.Failed} refused by the file system), tree holds {generator.Count()} entries");

        var converged = await Convergence.WaitAsync(daemon, TimeSpan.FromSeconds(30), Context);
        output.WriteLine($"churn: converged {converged.TotalSeconds:F1} s after the last op");
        await Convergence.AssertHealthyAsync(daemon, TimeSpan.FromSeconds(10), Context);
        var status = daemon.Status().Targets[0];
        int unannounced = daemon.Log.Lines.Count(l => l.Contains("self-check: ", StringComparison.Ordinal));
        output.WriteLine($"churn: drift repaired {status.DriftRepaired}, self-check pushes of unannounced changes {unannounced}, pushed {status.Pushed}, resyncs {status.Resyncs}");
        output.WriteLine($"churn: PASS seed {seed} ops {generator.Done} converge {converged.TotalSeconds:F1} s");
    }

    private static int Setting(string variable, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) ? value : fallback;
}

/// <summary>
/// The churn's own generator (seeded, so a run replays): picks each operation's targets among what the tree holds now,
/// keeps the tree bounded, and logs every operation compactly. An operation the file system refuses (a name taken
/// meanwhile, a move into itself) is logged as refused and the churn goes on: the tree is still a tree.
/// </summary>
internal sealed class ChurnGenerator(string bm, string outside, int seed)
{
    private const int MaxEntries = 300;
    private readonly Random _random = new(seed);
    private readonly List<string> _log = [];
    private int _fresh;

    public int Done { get; private set; }
    public int Failed { get; private set; }

    public IEnumerable<string> LastOps(int count) => _log.Skip(Math.Max(0, _log.Count - count));

    public int Count() => TreeOracle.List(bm).Count;

    /// <summary>A few directories and files beyond <see cref="TestTree.Build"/>'s, so early operations have targets.</summary>
    public void Seed()
    {
        foreach (string d in new[] { "a/x", "b", "c/deep/er", "x" })
            Directory.CreateDirectory(Path.Join(bm, d));
        File.WriteAllText(Path.Join(bm, "a/x/f.conf"), "f\n");
        File.WriteAllText(Path.Join(bm, "x/inner.conf"), "inner\n");
        File.WriteAllText(Path.Join(bm, "c/deep/er/g.conf"), "g\n");
    }

    public async Task RunAsync(TimeSpan duration, int maxOps)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration && Done < maxOps)
        {
            int burst = _random.Next(1, 20); // back to back, so the daemon sees them coalesce
            for (int i = 0; i < burst && Done < maxOps; i++)
                Step();
            await Task.Delay(_random.Next(0, 31));
        }
    }

    private void Step()
    {
        var tree = TreeOracle.List(bm);
        var files = tree.Where(e => e.Kind == TreeOracle.Kind.File).Select(e => e.Path).ToList();
        var dirs = tree.Where(e => e.Kind == TreeOracle.Kind.Directory).Select(e => e.Path).ToList();
        var links = tree.Where(e => e.Kind == TreeOracle.Kind.Symlink).Select(e => e.Path).ToList();
        var parents = new List<string> { "" };
        parents.AddRange(dirs);
        // Bounded both ways: a full tree only shrinks; a small one mostly grows (rm -r drains it fast otherwise).
        string op = tree.Count > MaxEntries ? Pick(["delete", "rm -r", "rm -r", "move out"])
            : tree.Count < 80 && _random.Next(2) == 0 ? Pick(["create", "create", "mkdir -p", "move back", "symlink", "editor save"])
            : PickWeighted();
        string line;
        try
        {
            line = Perform(op, files, dirs, links, parents);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            Failed++;
            line = $"{op}: refused ({e.GetType().Name}: {e.Message})";
        }
        Done++;
        _log.Add($"#{Done} {line}");
    }

    private static readonly (string Op, int Weight)[] Weights =
    [
        ("create", 12), ("overwrite", 8), ("truncate", 3), ("same-size rewrite", 5), ("append", 6), ("editor save", 4),
        ("rename file", 5), ("move file", 5), ("move file over", 4), ("rename dir", 3), ("move dir", 3), ("mkdir and move in", 3),
        ("rm -r", 2), ("dir to file", 2), ("symlink", 3), ("retarget", 3), ("dangling", 2), ("chmod", 5), ("chown", 4),
        ("mkdir -p", 3), ("move out", 1), ("move back", 2), ("delete", 6), ("excluded", 2),
    ];

    private string PickWeighted()
    {
        int total = Weights.Sum(w => w.Weight), roll = _random.Next(total);
        foreach (var (op, weight) in Weights)
        {
            if (roll < weight)
                return op;
            roll -= weight;
        }
        return "create";
    }

    private string Perform(string op, List<string> files, List<string> dirs, List<string> links, List<string> parents)
    {
        string Full(string relative) => Path.Join(bm, relative);
        string NewName(string parent, string suffix = ".conf") => Join(parent, $"n{++_fresh}{suffix}");
        string SomeName(string parent) => Join(parent, Pick(["a.conf", "b.conf", "c", "d.ini", "e"])); // often taken: collisions
        string? files1 = files.Count > 0 ? Pick(files) : null;
        string? dir1 = dirs.Count > 0 ? Pick(dirs) : null;
        switch (op)
        {
            case "create":
            {
                string path = _random.Next(3) == 0 ? SomeName(Pick(parents)) : NewName(Pick(parents), Pick([".conf", "", ".ini"]));
                if (Directory.Exists(Full(path)))
                    return $"create {path}: a directory is there";
                File.WriteAllBytes(Full(path), Content());
                return $"create {path}";
            }
            case "overwrite" when files1 != null:
                File.WriteAllBytes(Full(files1), Content());
                return $"overwrite {files1}";
            case "truncate" when files1 != null:
                using (var stream = new FileStream(Full(files1), FileMode.Open, FileAccess.Write))
                    stream.SetLength(_random.Next(2) == 0 ? 0 : stream.Length / 2);
                return $"truncate {files1}";
            case "same-size rewrite" when files1 != null:
            {
                // Same length, and the mtime put back: to the nanosecond (utimensat) or as .NET can (100 ns ticks, so the
                // nanoseconds move a little). Only the content and the ctime tell.
                string full = Full(files1);
                Check(Syscall.lstat(full, out var before), $"lstat {files1}");
                byte[] content = File.ReadAllBytes(full);
                if (content.Length == 0)
                    return $"same-size rewrite {files1}: empty, nothing to change";
                for (int i = 0; i < content.Length; i += 1 + _random.Next(64))
                    content[i] ^= 0x5a;
                var ticks = File.GetLastWriteTimeUtc(full);
                File.WriteAllBytes(full, content);
                if (_random.Next(2) == 0)
                {
                    var times = new[] { new Timespec { tv_sec = before.st_atime, tv_nsec = before.st_atime_nsec }, new Timespec { tv_sec = before.st_mtime, tv_nsec = before.st_mtime_nsec } };
                    Check(Syscall.utimensat(Syscall.AT_FDCWD, full, times, 0), $"utimensat {files1}");
                    return $"same-size rewrite {files1} (mtime kept to the ns)";
                }
                File.SetLastWriteTimeUtc(full, ticks);
                return $"same-size rewrite {files1} (mtime kept to 100 ns)";
            }
            case "append" when files1 != null:
                File.AppendAllText(Full(files1), $"appended {_random.Next()}\n");
                return $"append {files1}";
            case "editor save" when files1 != null:
            {
                // vim's dance: a swap file (excluded), the new version beside, renamed over.
                string swap = Join(Parent(files1), "." + Path.GetFileName(files1) + ".swp");
                File.WriteAllText(Full(swap), "swap\n");
                File.WriteAllBytes(Full(files1 + ".new"), Content());
                File.Move(Full(files1 + ".new"), Full(files1), overwrite: true);
                File.Delete(Full(swap));
                return $"editor save {files1}";
            }
            case "rename file" when files1 != null:
            {
                string to = _random.Next(2) == 0 ? NewName(Parent(files1)) : SomeName(Parent(files1));
                File.Move(Full(files1), Full(to), overwrite: true);
                return $"mv {files1} {to}";
            }
            case "move file" when files1 != null:
            {
                string to = NewName(Pick(parents));
                File.Move(Full(files1), Full(to));
                return $"mv {files1} {to}";
            }
            case "move file over" when files.Count > 1:
            {
                string from = Pick(files), to = Pick(files);
                if (from == to)
                    return $"mv {from} over itself: skipped";
                Rename(Full(from), Full(to));
                return $"mv {from} over {to}";
            }
            case "rename dir" when dir1 != null:
            {
                string to = NewName(Parent(dir1), ".d");
                Directory.Move(Full(dir1), Full(to));
                return $"mv {dir1}/ {to}/";
            }
            case "move dir" when dir1 != null:
            {
                string parent = Pick(parents);
                if (parent == dir1 || parent.StartsWith(dir1 + "/", StringComparison.Ordinal))
                    return $"mv {dir1}/ into itself: skipped";
                string to = NewName(parent, ".d");
                Directory.Move(Full(dir1), Full(to));
                return $"mv {dir1}/ {to}/";
            }
            case "mkdir and move in" when dir1 != null:
            {
                // The pattern that lost watches: a directory made, and at once an existing one moved into it.
                string made = NewName(Pick(parents.Where(p => p != dir1 && !p.StartsWith(dir1 + "/", StringComparison.Ordinal)).DefaultIfEmpty("").ToList()), ".d");
                Directory.CreateDirectory(Full(made));
                string to = Join(made, Path.GetFileName(dir1));
                Directory.Move(Full(dir1), Full(to));
                string later = Join(to, $"later{_fresh}.conf"); // written into the moved directory: its watch must be there
                File.WriteAllBytes(Full(later), Content());
                return $"mkdir {made} && mv {dir1}/ {to}/ && create {later}";
            }
            case "rm -r" when dir1 != null:
                Directory.Delete(Full(dir1), recursive: true);
                return $"rm -r {dir1}";
            case "dir to file" when dir1 != null:
                Directory.Delete(Full(dir1), recursive: true);
                File.WriteAllBytes(Full(dir1), Content());
                return $"rm -r {dir1} && create {dir1}";
            case "symlink":
            {
                string path = NewName(Pick(parents), ".link");
                string to = files1 != null && _random.Next(2) == 0 ? RelativeTo(Parent(path), files1) : dir1 != null ? RelativeTo(Parent(path), dir1) : "bm.ini";
                File.CreateSymbolicLink(Full(path), to);
                return $"ln -s {to} {path}";
            }
            case "retarget" when links.Count > 0:
            {
                // ln -sfn: a temp link beside, renamed over the old one.
                string link = Pick(links), temp = Join(Parent(link), $".tmp-link{++_fresh}");
                string to = files1 != null ? RelativeTo(Parent(link), files1) : "/nonexistent/retargeted";
                File.CreateSymbolicLink(Full(temp), to);
                Rename(Full(temp), Full(link));
                return $"ln -sfn {to} {link}";
            }
            case "dangling":
            {
                string path = NewName(Pick(parents), ".dangling"), to = Pick(["/nonexistent/target", "../missing.conf", "no/such/file"]);
                File.CreateSymbolicLink(Full(path), to);
                return $"ln -s {to} {path}";
            }
            case "chmod" when files1 != null || dir1 != null:
            {
                bool file = dir1 == null || (files1 != null && _random.Next(3) > 0);
                string path = file ? files1! : dir1!;
                string mode = file ? Pick(["600", "644", "755", "4755", "640", "2755"]) : Pick(["755", "750", "700", "775"]);
                Check(Syscall.chmod(Full(path), (FilePermissions)Convert.ToUInt32(mode, 8)), $"chmod {mode} {path}");
                return $"chmod {mode} {path}";
            }
            case "chown":
            {
                var candidates = files.Concat(dirs).Concat(links).ToList();
                if (candidates.Count == 0)
                    break;
                string path = Pick(candidates);
                uint uid = Pick([TestTree.NobodyUid, TestTree.NamelessUid, 0u]), gid = Pick([TestTree.NobodyUid, TestTree.NamelessUid, 0u]);
                Check(Syscall.lchown(Full(path), uid, gid), $"chown {uid}:{gid} {path}");
                return $"chown -h {uid}:{gid} {path}";
            }
            case "mkdir -p":
            {
                string top = NewName(Pick(parents), ".d"), deep = Join(top, "b/c/d");
                Directory.CreateDirectory(Full(deep));
                foreach (string level in new[] { top, Join(top, "b"), Join(top, "b/c"), deep })
                    if (_random.Next(2) == 0)
                        File.WriteAllBytes(Full(Join(level, "file.conf")), Content());
                return $"mkdir -p {deep} (with files)";
            }
            case "move out" when dir1 != null:
            {
                string to = Path.Join(outside, $"out{++_fresh}");
                Directory.Move(Full(dir1), to);
                return $"mv {dir1}/ <outside>/{Path.GetFileName(to)}/";
            }
            case "move back":
            {
                var away = Directory.GetDirectories(outside);
                if (away.Length == 0)
                    break;
                string from = Pick(away.ToList()), to = NewName(Pick(parents), ".back");
                Directory.Move(from, Full(to));
                return $"mv <outside>/{Path.GetFileName(from)}/ {to}/";
            }
            case "delete" when files.Count + links.Count > 0:
            {
                string path = Pick(files.Concat(links).ToList());
                File.Delete(Full(path));
                return $"rm {path}";
            }
            case "excluded":
            {
                string path = Join(Pick(parents), Pick([$"n{++_fresh}.conf~", $".n{++_fresh}.swp"]));
                File.WriteAllBytes(Full(path), Content());
                return $"create {path} (excluded)";
            }
        }
        return $"{op}: nothing to do it on";
    }

    /// <summary>Mostly small, sometimes empty, now and then big enough for a delta.</summary>
    private byte[] Content()
    {
        int size = _random.Next(20) switch
        {
            0 => 0,
            1 => _random.Next(50_000, 200_000),
            _ => _random.Next(1, 4_000),
        };
        var content = new byte[size];
        _random.NextBytes(content);
        return content;
    }

    private T Pick<T>(List<T> items) => items[_random.Next(items.Count)];

    private static string Join(string parent, string name) => parent.Length == 0 ? name : parent + "/" + name;

    private static string Parent(string path) => path.Contains('/', StringComparison.Ordinal) ? path[..path.LastIndexOf('/')] : "";

    /// <summary>A link target from directory <paramref name="fromDirectory"/> to <paramref name="path"/> (both relative to bm).</summary>
    private static string RelativeTo(string fromDirectory, string path) => Path.GetRelativePath(fromDirectory.Length == 0 ? "." : fromDirectory, path);

    /// <summary>rename(2) itself, which replaces a file or a link atomically (File.Move may copy and delete).</summary>
    private static void Rename(string from, string to) => Check(Syscall.rename(from, to), $"rename {from} {to}");

    private static void Check(int result, string what)
    {
        if (result != 0)
            throw new IOException($"{what}: {Stdlib.GetLastError()}");
    }
}
