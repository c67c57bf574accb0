using System.CommandLine;
using HaSync.Apply;
using HaSync.Configuration;
using HaSync.Daemon;
using HaSync.Guard;
using HaSync.Scanning;
using HaSync.Sync;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync resolve PATH --take active|passive</c>, run on the active node: settles a conflict (a path the passive
/// changed on its own and kept). <c>active</c> overwrites the passive's copy with this node's; <c>passive</c> brings the
/// passive's copy here (atomically, with its owner, mode and mtime), after which both hold the same and the passive's
/// journal records it as HaSync's. Either way the running daemon is told (SIGHUP) to retry now.
/// </summary>
internal static class ResolveCommand
{
    public static Command Create()
    {
        var config = ResyncCommand.ConfigOption();
        var path = new Argument<string>("path") { Description = "The conflicting path, as the configuration lists it (e.g. /etc/aliases)" };
        var take = new Option<string>("--take") { Description = "Whose copy wins: active (this node's) or passive (the other node's)", Required = true };
        take.AcceptOnlyFromAmong("active", "passive");
        var target = new Option<string?>("--target") { Description = "Only this target (default: every target)" };
        var force = new Option<bool>("--force") { Description = "Run even if this node is not the active one" };
        var command = new Command("resolve", "Settle a conflict: keep the active's or the passive's copy of one path") { path, take, config, target, force };
        command.SetAction(async (r, cancellationToken) =>
        {
            try
            {
                var loaded = ConfigLoader.Load(r.GetValue(config)!);
                string logical = Within(loaded, r.GetValue(path)!);
                if (await ResyncCommand.RefusedAsNotActiveAsync(loaded, "resolve", r.GetValue(force), cancellationToken))
                    return 3;
                var targets = Targets.Select(loaded, r.GetValue(target));
                bool takePassive = r.GetValue(take) == "passive";
                if (takePassive && targets.Count > 1)
                    throw new ConfigException($"{loaded.Source}: --take passive needs --target: which passive's copy should win? ({string.Join(", ", targets.Select(t => t.Name))})");
                int failed = 0;
                foreach (var t in targets)
                    if (!await ResolveAsync(loaded, t, logical, takePassive, cancellationToken))
                        failed++;
                TellDaemon(loaded);
                return failed == 0 ? 0 : 1;
            }
            catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"hasync resolve: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>The path, normalised, if it is in the watched set.</summary>
    private static string Within(HaSyncConfig config, string path)
    {
        if (!path.StartsWith('/') || TreeWalker.Normalise(path) is not { } logical)
            throw new ConfigException($"{path}: give the path as the configuration lists it: absolute, without '.' or '..'");
        return config.Paths.Any(p => TreeWalker.Within(logical, p))
            ? logical
            : throw new ConfigException($"{path}: not in the watched set of {config.Source} ({string.Join(", ", config.Paths)})");
    }

    private static async Task<bool> ResolveAsync(HaSyncConfig config, TargetConfig target, string path, bool takePassive, CancellationToken cancellationToken)
    {
        var only = config with { Paths = [path] };
        var epochs = new EpochStore(config.StateDirectory);
        try
        {
            var stats = await Targets.WithSessionAsync(target, async session =>
            {
                if (takePassive)
                    await FetchAsync(config, session, path);
                // Taking the active's copy means overwriting the passive's own change; taking the passive's, the two are
                // now the same and the agent adopts it without being told to.
                await epochs.ClaimAsync(session, term: null, outbid: false, adopt: !takePassive);
                var done = await Resync.RunAsync(only, session, config.Delete, cancellationToken: cancellationToken);
                // Writing the path moved its directory's time on the node written: the passive's directory gets the active's.
                string parent = TreeWalker.Parent(path);
                if (config.Paths.Any(p => TreeWalker.Within(parent, p))
                    && PosixFiles.Describe(TreeWalker.FullPath(config.SourceRoot, parent), parent) is { Kind: EntryKind.Directory } directory)
                {
                    var ack = session.SendSetMetadata(directory.WithModeKept(session.KeptModeBits));
                    await session.SendFlush();
                    if ((await ack) is { Status: not Protocol.AckStatus.Ok } refused)
                        done.Failures.Add($"{parent}: setting its time: {refused.Message}");
                }
                return done;
            }, cancellationToken);
            foreach (string failure in stats.Failures)
                Console.Error.WriteLine($"hasync resolve: {target.Name}: {failure}");
            foreach (var (conflict, message) in stats.Conflicts)
                Console.Error.WriteLine($"hasync resolve: {target.Name}: still a conflict: {conflict}: {message}");
            bool settled = stats.Failures.Count == 0 && stats.Conflicts.Count == 0;
            if (settled)
                Console.WriteLine($"{target.Name}: {path}: settled, the {(takePassive ? "passive's" : "active's")} copy is on both nodes " +
                                  $"({stats.FilesSent} files sent, {stats.MetadataFixed + stats.Adopted} recorded, {stats.Deleted} deleted)");
            return settled;
        }
        catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"hasync resolve: {target.Name}: {e.Message}");
            return false;
        }
    }

    /// <summary>Makes this node's <paramref name="path"/> what the passive holds: its file (content, owner, mode, mtime) or
    /// symlink, written atomically; removed here when the passive has none.</summary>
    private static async Task FetchAsync(HaSyncConfig config, AgentSession session, string path)
    {
        string local = TreeWalker.FullPath(config.SourceRoot, path);
        var theirs = (await session.RequestManifest([path])).FirstOrDefault(e => e.Path == path);
        switch (theirs?.Kind)
        {
            case null:
                if (PosixFiles.TryLstat(local, out var st) && PosixFiles.KindOf(st) != EntryKind.Directory)
                    File.Delete(local);
                break;
            case EntryKind.File:
                byte[] content = await session.RequestContent(path, theirs.Size);
                if (content.Length != theirs.Size || !ContentHasher.Of(content).AsSpan().SequenceEqual(theirs.Hash))
                    throw new HaSyncException($"{path}: the passive's copy changed while it was read; run resolve again");
                using (var file = AtomicFile.Create(local, privateUntilCommit: true))
                {
                    file.Stream.Write(content);
                    file.Commit(beforeRename: temp => PosixFiles.ApplyMetadata(temp, theirs));
                }
                break;
            case EntryKind.Symlink:
                AtomicFile.PlaceSymlink(local, theirs.LinkTarget!, temp => PosixFiles.ApplyMetadata(temp, theirs));
                break;
            default:
                throw new HaSyncException($"{path}: is a directory on the passive; resolve settles one file or symlink at a time");
        }
    }

    /// <summary>A running daemon retries its failed paths and conflicts now, instead of at its next retry.</summary>
    private static void TellDaemon(HaSyncConfig config)
    {
        if (DaemonLock.RunningPid(config) is int pid && Mono.Unix.Native.Syscall.kill(pid, Mono.Unix.Native.Signum.SIGHUP) == 0)
            Console.WriteLine($"told the daemon (pid {pid}) to retry now");
    }
}
