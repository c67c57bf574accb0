using System.CommandLine;
using System.Reflection;
using HaSync.Configuration;
using HaSync.Daemon;
using HaSync.Scanning;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync demo</c>: the main job on an embedded default, with no remote host. It seeds a local pair of
/// folders (DIR/active: BlueMind-like configuration; DIR/passive: a stale copy with one file missing, one
/// outdated, one obsolete, one with the wrong mode), writes the embedded samples/demo.yaml as DIR/hasync.yaml,
/// then runs what an admin would: <c>diff</c>, <c>resync</c> (through the real agent, local transport),
/// and <c>diff</c> again, which must report the pair in sync; then the daemon for a moment, with one edit that
/// reaches the passive live.
/// </summary>
internal static class DemoCommand
{
    private const string TreePrefix = "demo/";
    private const string ConfigResource = "demo.yaml";

    public static Command Create()
    {
        var dir = new Option<string>("--dir") { Description = "Where the demo pair lives", DefaultValueFactory = _ => "demo" };
        var command = new Command("demo", "Seed a local demo pair of folders and bring the passive in line (diff, resync, diff)") { dir };
        command.SetAction(async (r, cancellationToken) =>
        {
            try
            {
                return await RunAsync(Path.GetFullPath(r.GetValue(dir)!), cancellationToken);
            }
            catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"hasync demo: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(string root, CancellationToken cancellationToken)
    {
        string active = Path.Combine(root, "active"), passive = Path.Combine(root, "passive"), configPath = Path.Combine(root, "hasync.yaml");
        if (!Directory.Exists(active))
            Seed(active, passive);
        if (!File.Exists(configPath))
            Extract(ConfigResource, configPath);
        var config = ConfigLoader.Load(configPath);
        var target = config.Targets[0];

        Console.WriteLine($"== hasync diff -c {configPath}");
        await DiffCommand.DiffTargetAsync(config, target, json: false, all: false, cancellationToken);
        // First contact: the passive's files that differ were never written by HaSync, so a plain resync would keep
        // them as conflicts. Seeding a pair is what --force is for.
        Console.WriteLine($"== hasync resync --force -c {configPath}   (first contact: seed the passive)");
        if (!await ResyncCommand.RunTargetAsync(config, target, config.Delete, force: true, json: false, cancellationToken))
            return 1;
        Console.WriteLine($"== hasync diff -c {configPath}");
        bool differs = await DiffCommand.DiffTargetAsync(config, target, json: false, all: false, cancellationToken);
        if (differs)
        {
            Console.WriteLine("demo: the passive still differs after the resync (see above)");
            return 1;
        }
        if (!await LiveEditAsync(config, active, passive, cancellationToken))
            return 1;
        Console.WriteLine($"demo: done. Edit a file under {active} and run `hasync diff -c {configPath}` and `hasync resync -c {configPath}`,");
        Console.WriteLine($"      or keep the pair in sync live with `hasync daemon -c {configPath}` (and `hasync status -c {configPath}`).");
        return 0;
    }

    /// <summary>The daemon for a moment: one edit on the active, timed until the passive holds it.</summary>
    private static async Task<bool> LiveEditAsync(HaSyncConfig config, string active, string passive, CancellationToken cancellationToken)
    {
        Console.WriteLine($"== hasync daemon -c {config.Source}   (for a moment: one edit, live)");
        using var logs = DaemonCommand.CreateLogger(config, verbose: false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var daemon = new SyncDaemon(config, logs.CreateLogger("hasync"), TimeProvider.System);
        var running = daemon.RunAsync(stop.Token);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!(File.Exists(config.StatusFile) && ReadConnected(config.StatusFile)) && DateTime.UtcNow < deadline && !running.IsCompleted)
            await Task.Delay(10, cancellationToken);

        const string relative = "etc/bm/bm.ini";
        string line = $"# edited live by the demo at {DateTime.UtcNow:HH:mm:ss.fff}\n";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        File.AppendAllText(Path.Combine(active, relative), line);
        bool arrived = false;
        while (!arrived && clock.Elapsed < TimeSpan.FromSeconds(20) && !running.IsCompleted)
        {
            await Task.Delay(2, cancellationToken);
            arrived = File.ReadAllText(Path.Combine(passive, relative)).EndsWith(line, StringComparison.Ordinal);
        }
        long milliseconds = clock.ElapsedMilliseconds;
        await stop.CancelAsync();
        await running;
        Console.WriteLine(arrived
            ? $"demo: /{relative} was edited on the active; the passive had the change {milliseconds} ms later."
            : $"demo: the live edit of /{relative} did not reach the passive within 20 s (see the log above)");
        return arrived;
    }

    private static bool ReadConnected(string statusFile)
    {
        try
        {
            return StatusFile.Read(statusFile).Targets.All(t => t.Connected);
        }
        catch (IOException)
        {
            return false; // being replaced right now
        }
    }

    /// <summary>Writes the embedded active tree, and a passive copy that has fallen behind.</summary>
    private static void Seed(string active, string passive)
    {
        var assembly = Assembly.GetExecutingAssembly();
        foreach (string name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(TreePrefix, StringComparison.Ordinal)))
            Extract(name, Path.Combine(active, name[TreePrefix.Length..]));
        foreach (string file in Directory.EnumerateFiles(active, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(active, file);
            if (relative == Path.Combine("etc", "aliases"))
                continue; // missing on the passive
            string target = Path.Combine(passive, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
            var source = PosixFiles.Describe(file, relative, withHash: false)!;
            PosixFiles.SetMtime(target, source.MtimeSeconds, source.MtimeNanoseconds); // to the nanosecond, as a real copy would be
        }
        // The passive's Elasticsearch configuration predates a tuning change on the active.
        string yml = Path.Combine(passive, "usr", "share", "bm-elasticsearch", "config", "elasticsearch.yml");
        File.WriteAllText(yml, File.ReadAllText(yml).Replace("queue_size: 1000", "queue_size: 200").Replace("mailspool_42:", "mailspool_42 (old):"));
        File.SetUnixFileMode(Path.Combine(passive, "etc", "sysctl.conf"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead);
        File.WriteAllText(Path.Combine(passive, "etc", "bm", "obsolete.conf"), "# left over from an older release\n");
        Console.WriteLine($"seeded a demo pair: {active} (the active node's files) and {passive} (a stale passive copy)");
    }

    private static void Extract(string resource, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resource)
            ?? throw new HaSyncException($"the embedded resource {resource} is missing from this build");
        using var file = File.Create(path);
        stream.CopyTo(file);
    }
}
