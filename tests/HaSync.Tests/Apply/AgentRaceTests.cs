using System.Diagnostics;
using HaSync.Configuration;
using HaSync.Scanning;
using HaSync.Sync;
using HaSync.Tests.Support;
using HaSync.Transport;
using Mono.Unix.Native;
using Xunit.Abstractions;

namespace HaSync.Tests.Apply;

/// <summary>
/// A local user on the passive races the agent, as rsync's CVE-2024-12087 class needs: it owns a directory inside the
/// root, and swaps it with a symlink to a directory of canary files outside the root (renameat2 RENAME_EXCHANGE) and
/// the agent's temp files with symlinks to a canary file, as fast as it can, while resyncs write, chmod (setuid
/// included), chown, touch, link and delete inside it, and then while the daemon pushes what inotify tells it. Nothing
/// outside the root may change, and no canary may show in any answer. Once with openat2, once with the per-component walk.
/// </summary>
[Collection("daemon")] // the racer and the resyncs want both cores to themselves
public class AgentRaceTests(ITestOutputHelper output)
{
    private const string Racer = "hasync-racer";
    private static readonly TimeSpan RaceLimit = TimeSpan.FromSeconds(90); // the racer's own end, should the test not stop it
    private const int MinimumRequests = 10_000;
    private const int Files = 60;
    private static readonly TimeSpan DaemonPhase = TimeSpan.FromSeconds(8);
    private const int MinimumDaemonPushes = 500; // acknowledged changes; the racer makes many more fail, which are retried

    private static (uint Uid, uint Gid) RacerUser()
    {
        if (Syscall.getpwnam(Racer) is null)
            Tools.Check(Tools.Require("useradd", "passwd"), "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", Racer);
        var user = Syscall.getpwnam(Racer) ?? throw new InvalidOperationException($"useradd made no {Racer}");
        return (user.pw_uid, user.pw_gid);
    }

    /// <summary>What a directory outside the root holds, to the ctime: a chmod or chown put back still shows.</summary>
    private static List<string> Snapshot(string dir) =>
        [.. Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Append(dir).Order(StringComparer.Ordinal).Select(path =>
        {
            Assert.Equal(0, Syscall.lstat(path, out var st));
            string content = (st.st_mode & FilePermissions.S_IFMT) == FilePermissions.S_IFREG ? Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path))) : "";
            return $"{path} {st.st_mode} {st.st_uid}:{st.st_gid} {st.st_size} {st.st_mtime}.{st.st_mtime_nsec} {st.st_ctime}.{st.st_ctime_nsec} {content}";
        })];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ALocalUserSwappingItsDirectoryAndTheTempFilesForSymlinksGetsNothingOutsideTheRoot(bool resolveByWalk)
    {
        var (uid, gid) = RacerUser();
        using var dir = new TempDir();
        string active = dir.File("active"), passive = dir.File("passive"), canary = dir.File("canary");
        string activeConf = Path.Join(active, "etc/bm/svc/conf");
        Directory.CreateDirectory(activeConf);
        Directory.CreateDirectory(Path.Join(passive, "etc/bm"));
        TestTree.Chown(Path.Join(active, "etc/bm/svc"), uid, gid); // the service account owns its directory, on both nodes
        TestTree.Chown(activeConf, uid, gid);
        Directory.CreateDirectory(Path.Join(canary, "sub"));
        var canaries = Enumerable.Range(0, 4).Select(i => $"CANARY-{i}-{Guid.NewGuid():N}").ToList();
        for (int i = 0; i < canaries.Count; i++)
        {
            File.WriteAllText(Path.Join(canary, $"c{i}.conf"), canaries[i]);
            TestTree.Chmod(Path.Join(canary, $"c{i}.conf"), "600");
        }
        var canaryHashes = canaries.Select(c => ContentHasher.Of(System.Text.Encoding.UTF8.GetBytes(c))).Select(Convert.ToHexString).ToHashSet();
        var before = Snapshot(canary);

        var target = resolveByWalk ? TestTree.LocalTarget(passive, "--resolve-by-walk") : TestTree.LocalTarget(passive);
        var config = TestTree.Config(active, target, "conf.swap", ".racer-*");
        var agent = AgentProcess.Start(target);
        var session = AgentSession.Open(agent.Input, agent.Output, "race", agent.Describe);
        await TestTree.ClaimAsync(session);

        var random = new Random(20261201);
        void Churn(int round)
        {
            foreach (int i in Enumerable.Range(0, Files))
            {
                string file = Path.Join(activeConf, $"f{i}.conf");
                switch ((round + i) % 6)
                {
                    case 0: File.WriteAllText(file, $"round {round} file {i} {random.Next()}\n"); break;
                    case 1: if (File.Exists(file)) TestTree.Chmod(file, round % 2 == 0 ? "4755" : "640"); break;
                    case 2: if (File.Exists(file)) TestTree.Chown(file, round % 2 == 0 ? 0 : uid, gid); break;
                    case 3: if (File.Exists(file)) File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(-round)); break;
                    case 4: File.Delete(file); File.Delete(file + ".link"); File.CreateSymbolicLink(file + ".link", $"f{(i + 1) % Files}.conf"); break;
                    default: File.Delete(file); break;
                }
            }
        }

        var racer = Process.Start(new ProcessStartInfo(Tools.Require("setpriv", "util-linux"),
            ["--reuid", uid.ToString(), "--regid", gid.ToString(), "--clear-groups", Tools.Require("/usr/bin/python3", "python3"), Path.Combine(AppContext.BaseDirectory, "Apply/Race/racer.py"),
                Path.Join(passive, "etc/bm/svc/conf"), canary, RaceLimit.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        { RedirectStandardOutput = true, RedirectStandardError = true })!;
        long requests = 0;
        int rounds = 0, failures = 0;
        var leaks = new List<string>();
        var refusedManifests = new List<string>();
        var clock = Stopwatch.StartNew();
        while (requests < MinimumRequests && clock.Elapsed < RaceLimit - TimeSpan.FromSeconds(10))
        {
            Churn(rounds++);
            List<FileEntry> manifest;
            try
            {
                var stats = await Resync.RunAsync(config, session, delete: true).WaitAsync(TimeSpan.FromMinutes(1));
                manifest = await session.RequestManifest(["/etc/bm"]).WaitAsync(TimeSpan.FromMinutes(1));
                requests += stats.FilesSent + stats.OthersCreated + stats.MetadataFixed + stats.Deleted + stats.Failures.Count + 2;
                failures += stats.Failures.Count;
            }
            catch (AgentRequestException e)
            {
                refusedManifests.Add(e.Message); // refusing to answer is safe; what matters is what happens outside the root
                requests++;
                continue;
            }
            leaks.AddRange(manifest.Where(e => System.Text.RegularExpressions.Regex.IsMatch(Path.GetFileName(e.Path), @"^c\d\.conf$")
                || e.Hash is { } h && canaryHashes.Contains(Convert.ToHexString(h))).Select(e => e.Path)); // a canary's name or content
        }
        session.Dispose();
        await agent.DisposeAsync();

        // The daemon: events on the active, pushed in small rounds as they come (its own agent, with a state directory of
        // its own: the test's claims above outbid any epoch a daemon's first claim could make).
        long pushed;
        int daemonRounds = 0;
        var daemonTarget = resolveByWalk ? TestTree.LocalTarget(passive, "--resolve-by-walk", "--state", dir.File("daemon-passive-state"))
            : TestTree.LocalTarget(passive, "--state", dir.File("daemon-passive-state"));
        await using (var daemon = new DaemonHarness(active, passive, daemonTarget with { Name = "race" }, dir.File("state"), exclude: ["conf.swap", ".racer-*"],
            configure: Convergence.AlwaysActive))
        {
            await daemon.WaitConnectedAsync();
            var phase = Stopwatch.StartNew();
            while (phase.Elapsed < DaemonPhase)
            {
                Churn(rounds + daemonRounds++);
                await Task.Delay(20);
            }
            await Task.Delay(1000); // the last events pushed
            pushed = daemon.Status().Targets[0].Pushed;
        }
        Syscall.kill(racer.Id, Signum.SIGTERM); // setpriv execs the racer: this is its pid
        await racer.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        string raced = (await racer.StandardOutput.ReadToEndAsync()).Trim();
        output.WriteLine($"{(resolveByWalk ? "walk" : "openat2")}: {rounds} rounds, {requests} requests ({failures} refused or failed, {refusedManifests.Count} manifests refused); " +
            $"daemon: {daemonRounds} rounds, {pushed} pushed; racer: {raced} {await racer.StandardError.ReadToEndAsync()}");

        Assert.Equal(before, Snapshot(canary)); // nothing created, changed, re-moded, re-owned or deleted outside the root
        Assert.Empty(leaks);                    // and nothing of it answered
        Assert.True(refusedManifests.Count <= rounds / 10, $"{refusedManifests.Count} of {rounds} manifests refused, e.g. {refusedManifests.FirstOrDefault()}");
        Assert.True(requests >= MinimumRequests, $"only {requests} requests in {rounds} rounds: the race proves little");
        Assert.True(pushed >= MinimumDaemonPushes, $"the daemon pushed only {pushed} changes in {daemonRounds} rounds: the race proves little");
        Assert.Matches(@"exchanges [1-9]\d* temp_swaps \d+", raced); // the racer did race
    }
}
