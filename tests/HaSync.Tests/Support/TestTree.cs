using HaSync.Configuration;
using HaSync.Scanning;
using Mono.Unix.Native;

namespace HaSync.Tests.Support;

/// <summary>An active tree with the cases an /etc holds: odd names, modes, owners, links, empty directories.</summary>
internal static class TestTree
{
    public const string Watched = "/etc/bm";
    public const uint NobodyUid = 65534;
    public const uint NamelessUid = 4242; // no passwd entry: travels as a number

    public static readonly string[] OddNames = ["with space.conf", "ünïcødé-€.conf", "new\nline.conf", "-leading-dash", "quote'\"s"];

    public static void Build(string root)
    {
        string bm = Path.Join(root, "etc/bm");
        Directory.CreateDirectory(Path.Join(bm, "conf.d"));
        Directory.CreateDirectory(Path.Join(bm, "empty"));
        File.WriteAllText(Path.Join(bm, "bm.ini"), "[global]\nhost = 192.0.2.10\n");
        File.WriteAllText(Path.Join(bm, "conf.d", "mail.conf"), string.Join('\n', Enumerable.Range(0, 2000).Select(i => $"option_{i} = value {i}")) + "\n");
        File.WriteAllBytes(Path.Join(bm, "large.bin"), TestData.Random(new Random(1), 300_000));
        File.WriteAllBytes(Path.Join(bm, "empty-file"), []);
        foreach (string name in OddNames)
            File.WriteAllText(Path.Join(bm, name), $"odd name {name}\n");
        File.WriteAllText(Path.Join(bm, "private.key"), "-----BEGIN PRIVATE KEY-----\nsecret\n");
        Chmod(Path.Join(bm, "private.key"), "600");
        File.WriteAllText(Path.Join(bm, "helper"), "#!/bin/sh\necho hi\n");
        Chmod(Path.Join(bm, "helper"), "755"); // set-id bits: Apply/SetIdTests
        File.WriteAllText(Path.Join(bm, "nobody.conf"), "owned by nobody\n");
        Chown(Path.Join(bm, "nobody.conf"), NobodyUid, NobodyUid);
        File.WriteAllText(Path.Join(bm, "nameless.conf"), "owned by a uid without a name\n");
        Chown(Path.Join(bm, "nameless.conf"), NamelessUid, NamelessUid);
        File.CreateSymbolicLink(Path.Join(bm, "current.ini"), "bm.ini");
        File.CreateSymbolicLink(Path.Join(bm, "dangling"), "/nonexistent/target");
        File.CreateSymbolicLink(Path.Join(bm, "z-conf-link"), "conf.d"); // to a directory that exists by then: replicated as a link, never followed
        Chmod(Path.Join(bm, "conf.d"), "750");
    }

    public static HaSyncConfig Config(string activeRoot, TargetConfig target, params string[] exclude) => new()
    {
        Source = "test",
        SourceRoot = activeRoot,
        Paths = [Watched],
        Exclude = exclude,
        Redact = ["*.key"],
        Targets = [target],
    };

    public static TargetConfig LocalTarget(string passiveRoot, params string[] extra) => new()
    {
        Name = "local",
        Transport = TransportKind.Local,
        Command = [Path.Combine(AppContext.BaseDirectory, "hasync"), "serve", "--root", passiveRoot, .. WithState(passiveRoot, extra)],
    };

    /// <summary>The passive's state directory a test's agent gets: beside its root (in the test's temp dir), never the system's.</summary>
    public static string PassiveState(string passiveRoot) => Path.TrimEndingDirectorySeparator(passiveRoot) + ".state";

    /// <summary><paramref name="extra"/> with <c>--state</c> added unless it has one.</summary>
    public static string[] WithState(string passiveRoot, string[] extra) =>
        extra.Contains("--state") ? extra : [.. extra, "--state", PassiveState(passiveRoot)];

    /// <summary>Claims an epoch on <paramref name="session"/> as a test's active node: above whatever the agent knows, and
    /// (by default) overwriting what the passive holds of its own, as <c>resync --force</c> does when seeding a pair.</summary>
    public static Task ClaimAsync(HaSync.Sync.AgentSession session, bool adopt = true) =>
        new HaSync.Guard.EpochStore(Path.Combine(Path.GetTempPath(), "hasync-test-active-node")).ClaimAsync(session, term: null, outbid: true, adopt: adopt);

    /// <summary>Asserts both roots hold the same watched set, by the test's own oracle (<see cref="TreeOracle"/>): kinds,
    /// content, link targets, modes (less set-id bits unless <paramref name="setIdKept"/>), owners, file mtimes.</summary>
    public static void AssertIdentical(string activeRoot, string passiveRoot, string watched = Watched, bool setIdKept = false)
    {
        var differences = TreeOracle.Compare(Path.Join(activeRoot, watched), Path.Join(passiveRoot, watched), setIdKept: setIdKept);
        Assert.True(differences.Count == 0, $"the passive differs from the active:\n  {string.Join("\n  ", differences)}");
    }

    /// <summary>Starts the target's agent, opens a session, claims it (seeding: see <see cref="ClaimAsync"/>), runs
    /// <paramref name="work"/> with a bounded wait, closes both.</summary>
    public static async Task<T> WithSession<T>(TargetConfig target, Func<HaSync.Sync.AgentSession, Task<T>> work)
    {
        await using var agent = HaSync.Transport.AgentProcess.Start(target);
        using var session = HaSync.Sync.AgentSession.Open(agent.Input, agent.Output, target.Name, agent.Describe);
        await ClaimAsync(session);
        return await work(session).WaitAsync(TimeSpan.FromMinutes(2));
    }

    /// <summary>A regular file's entry for <paramref name="content"/>, as the active would send it.</summary>
    public static FileEntry FileEntry(string path, byte[] content, long? size = null, byte[]? hash = null) => new()
    {
        Path = path,
        Kind = EntryKind.File,
        Size = size ?? content.Length,
        Mode = 0x1a4, // 0644
        MtimeSeconds = 1_700_000_000,
        Hash = hash ?? ContentHasher.Of(content),
    };

    public static void Chmod(string path, string octalMode) => Assert.Equal(0, Syscall.chmod(path, (FilePermissions)Convert.ToUInt32(octalMode, 8)));

    public static void Chown(string path, uint uid, uint gid) => Assert.Equal(0, Syscall.lchown(path, uid, gid));
}
