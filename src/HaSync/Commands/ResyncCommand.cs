using System.CommandLine;
using System.Diagnostics;
using HaSync.Configuration;
using HaSync.Guard;
using HaSync.Scanning;
using HaSync.Sync;

namespace HaSync.Cli.Commands;

/// <summary><c>hasync resync</c>: one-shot full resync of every (or one) target, with progress and a summary.</summary>
internal static class ResyncCommand
{
    public static Command Create()
    {
        var config = ConfigOption();
        var target = new Option<string?>("--target") { Description = "Only this target" };
        var noDelete = new Option<bool>("--no-delete") { Description = "Keep extra files on the passive even when the configuration says delete" };
        var force = new Option<bool>("--force")
        {
            Description = "Run even if this node is not the active one, take an epoch above the passive's, and overwrite files the passive changed " +
                          "on its own or that HaSync never wrote there (seeding a new pair; settling every conflict in favour of this node)",
        };
        var json = new Option<bool>("--json") { Description = "No progress; each target's summary as one JSON document per line (counts, failures, conflicts, bytes, seconds)" };
        var command = new Command("resync", "Compare the watched set with each passive node and push what differs") { config, target, noDelete, force, json };
        command.SetAction(async (r, cancellationToken) =>
        {
            try
            {
                var loaded = ConfigLoader.Load(r.GetValue(config)!);
                bool delete = loaded.Delete && !r.GetValue(noDelete);
                if (await RefusedAsNotActiveAsync(loaded, "resync", r.GetValue(force), cancellationToken))
                    return 3;
                int failed = 0;
                foreach (var t in Targets.Select(loaded, r.GetValue(target)))
                    if (!await RunTargetAsync(loaded, t, delete, r.GetValue(force), r.GetValue(json), cancellationToken))
                        failed++;
                return failed == 0 ? 0 : 1;
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"hasync resync: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>True (and said why on stderr) when the role check says this node is not the active one and the admin
    /// did not force it: a passive node that pushes is how split-brain destroys data.</summary>
    internal static async Task<bool> RefusedAsNotActiveAsync(HaSyncConfig config, string verb, bool force, CancellationToken cancellationToken)
    {
        var verdict = await RoleCheck.EvaluateAsync(config.Role, cancellationToken);
        if (config.Role.Kind == RoleKind.Unset)
            Console.Error.WriteLine($"hasync {verb}: warning: no role check is configured in {config.Source}; this node counts as active");
        if (verdict.Active)
            return false;
        if (force)
        {
            Console.Error.WriteLine($"hasync {verb}: this node is not the active one ({verdict.Detail}); going on because of --force");
            return false;
        }
        Console.Error.WriteLine($"hasync {verb}: refusing to push: this node is not the active one ({verdict.Detail}). " +
                                "Run it on the active node, or pass --force if you are sure this node's files must win.");
        return true;
    }

    /// <summary>Resyncs one target with progress and a summary; false when anything failed or conflicts (already reported).</summary>
    internal static async Task<bool> RunTargetAsync(HaSyncConfig config, TargetConfig target, bool delete, bool force, bool json, CancellationToken cancellationToken)
    {
        try
        {
            var epochs = new EpochStore(config.StateDirectory);
            // This node's term is read while the agent starts (it takes longer); --force needs the agent's epoch first.
            var term = force ? Task.FromResult<Epoch?>(null) : Task.Run<Epoch?>(epochs.CurrentOrNew, cancellationToken);
            // The watched set is walked and hashed while ssh connects; it stops if the session cannot be had.
            using var scanning = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            string cachePath = HashCache.ActiveFile(config.StateDirectory);
            var cache = HashCache.Load(cachePath, problem => Console.Error.WriteLine($"hasync resync: {problem}"));
            var scan = ActiveScan.Start(config, cache, scanning.Token);
            ResyncStats stats;
            try
            {
                stats = await Targets.WithSessionAsync(target, async session =>
                {
                    await epochs.ClaimAsync(session, await term, outbid: force, adopt: force);
                    return json ? await Resync.RunAsync(config, session, delete, scan: scan, cancellationToken: cancellationToken)
                        : await RunWithProgressAsync(config, session, delete, scan, cancellationToken);
                }, cancellationToken);
            }
            finally
            {
                scanning.Cancel();
            }
            cache.SaveIfChanged(cachePath, problem => Console.Error.WriteLine($"hasync resync: {problem}"));
            if (json)
                Console.WriteLine(SummaryJson(target.Name, stats));
            else
                PrintSummary(target.Name, stats);
            return stats.Failures.Count == 0 && stats.Conflicts.Count == 0;
        }
        catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
        {
            // A file of the watched set the active cannot read fails the whole target: skipping it would look like a delete.
            Console.Error.WriteLine($"hasync resync: {target.Name}: {e.Message}");
            return false;
        }
    }

    internal static Option<string> ConfigOption() =>
        new("--config", "-c") { Description = "Configuration file", DefaultValueFactory = _ => ConfigLoader.DefaultPath };

    /// <summary>Runs the resync showing how far it has got: the compare (entries and bytes hashed on each side), then the pushes
    /// (steps, bytes, rate and time left). On a terminal, one live line (<see cref="LiveLine"/>); otherwise, a line per push
    /// and one every few seconds of the compare, for a log.</summary>
    private static async Task<ResyncStats> RunWithProgressAsync(HaSyncConfig config, AgentSession session, bool delete, ActiveScan scan, CancellationToken cancellationToken)
    {
        string target = session.Target;
        Stopwatch? pushing = null;
        string PushLine(PushProgress step, int pathLength = int.MaxValue)
        {
            pushing ??= Stopwatch.StartNew();
            string line = $"[{step.Done}/{step.Total}] {step.Action} {Truncate(step.Path, pathLength)}";
            return step.TotalBytes > 0 ? $"{line} ({step.Transfer(pushing.Elapsed)})" : line;
        }
        if (Console.IsOutputRedirected)
        {
            // Every push, and the compare's counts or a large file's progress when nothing was said for two seconds.
            var lastLine = Stopwatch.StartNew();
            var plain = new InlineProgress<ResyncProgress>(step =>
            {
                string? line = step switch
                {
                    CompareProgress compare when (compare.Active.Done && compare.Passive.Done) || lastLine.Elapsed >= TimeSpan.FromSeconds(2) => compare.ToString(),
                    PushProgress push when push.Action != "sending" || lastLine.Elapsed >= TimeSpan.FromSeconds(2) => PushLine(push),
                    _ => null,
                };
                if (line is null)
                    return;
                lastLine.Restart();
                Console.WriteLine($"{target}: {line}");
            });
            return await Resync.RunAsync(config, session, delete, plain, scan: scan, cancellationToken: cancellationToken);
        }
        using var live = new LiveLine();
        live.Show($"{target}: comparing");
        var progress = new InlineProgress<ResyncProgress>(step => live.Show(step switch
        {
            CompareProgress compare => $"{target}: {compare}",
            PushProgress push => $"{target}: {Bar(push.TotalBytes > 0 ? (double)push.Bytes / push.TotalBytes : (double)push.Done / Math.Max(1, push.Total))} "
                                 + PushLine(push, pathLength: 48),
            _ => $"{target}",
        }));
        return await Resync.RunAsync(config, session, delete, progress, scan: scan, cancellationToken: cancellationToken);
    }

    /// <summary>How far along, as a bar and a percentage: <c>[######----]  60%</c>.</summary>
    private static string Bar(double done)
    {
        done = Math.Clamp(done, 0, 1);
        int filled = (int)Math.Round(done * 10);
        return $"[{new string('#', filled)}{new string('-', 10 - filled)}] {(int)(done * 100),3}%";
    }

    /// <summary>One line on the terminal, rewritten in place as the resync goes (at most every 100 ms, and cut to the
    /// terminal's width so that it never wraps), and erased at the end, before the summary.</summary>
    private sealed class LiveLine : IDisposable
    {
        private readonly Lock _lock = new(); // the compare reports from the active's scan and from the agent's answers
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan _next;
        private bool _shown;

        public void Show(string text)
        {
            lock (_lock)
            {
                if (_shown && _clock.Elapsed < _next)
                    return;
                _next = _clock.Elapsed + TimeSpan.FromMilliseconds(100);
                int width = Width();
                if (text.Length >= width)
                    text = text[..(width - 2)] + "…";
                Console.Out.Write($"\r{text}\u001b[K"); // back to the line's start, the text, the rest of the line erased
                Console.Out.Flush();
                _shown = true;
            }
        }

        private static int Width()
        {
            try
            {
                return Console.WindowWidth is var width and > 0 ? Math.Max(20, width) : 80; // 0: a terminal that gives no size
            }
            catch (IOException)
            {
                return 80;
            }
        }

        public void Dispose()
        {
            lock (_lock)
                if (_shown)
                    Console.Out.Write("\r\u001b[K");
        }
    }

    /// <summary>Reports on the reporter's thread, in order (Progress&lt;T&gt; posts every report to the thread pool: one hop
    /// per file, and lines that may come out of order).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private static string Truncate(string path, int length) => path.Length <= length ? path : "…" + path[^(length - 1)..];

    /// <summary>One target's summary as a one-line JSON document (exact byte counts, for scripts and benchmarks).</summary>
    private static string SummaryJson(string target, ResyncStats stats)
    {
        using var buffer = new MemoryStream();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("target", target);
            json.WriteBoolean("in_sync", stats.Failures.Count == 0 && stats.Conflicts.Count == 0);
            json.WriteNumber("scanned", stats.Scanned);
            json.WriteNumber("files_sent", stats.FilesSent);
            json.WriteNumber("dirs_links_made", stats.OthersCreated);
            json.WriteNumber("metadata_fixed", stats.MetadataFixed);
            json.WriteNumber("deleted", stats.Deleted);
            json.WriteNumber("adopted", stats.Adopted);
            json.WriteStartArray("failures");
            foreach (string failure in stats.Failures)
                json.WriteStringValue(failure);
            json.WriteEndArray();
            json.WriteStartObject("conflicts");
            foreach (var (path, message) in stats.Conflicts)
                json.WriteString(path, message);
            json.WriteEndObject();
            json.WriteStartObject("setid_not_kept");
            foreach (var (path, mode) in stats.SetIdNotKept)
                json.WriteString(path, Convert.ToString(mode, 8));
            json.WriteEndObject();
            json.WriteNumber("literal_bytes", stats.LiteralBytes);
            json.WriteNumber("matched_bytes", stats.MatchedBytes);
            json.WriteNumber("wire_bytes", stats.WireBytes);
            json.WriteNumber("seconds", Math.Round(stats.Elapsed.TotalSeconds, 3));
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void PrintSummary(string target, ResyncStats stats)
    {
        foreach (string failure in stats.Failures)
            Console.Error.WriteLine($"hasync resync: {target}: {failure}");
        foreach (var (path, message) in stats.Conflicts)
            Console.Error.WriteLine($"hasync resync: {target}: CONFLICT {path}: {message}");
        foreach (var (path, mode) in stats.SetIdNotKept)
            Console.Error.WriteLine($"hasync resync: {target}: {Resync.SetIdNotKept(path, mode)}");
        if (stats.Conflicts.Count > 0)
            Console.Error.WriteLine($"hasync resync: {target}: {stats.Conflicts.Count} conflict(s) left as they are on the passive; " +
                                    "settle each with 'hasync resolve PATH --take active|passive', or all in this node's favour with 'hasync resync --force'");
        Console.WriteLine($"{target}: {stats.Scanned} scanned, {stats.FilesSent} files sent, {stats.OthersCreated} dirs/links made, " +
                          $"{stats.MetadataFixed} metadata fixed, {stats.Deleted} deleted, {stats.Adopted} adopted, {stats.Conflicts.Count} conflicts, {stats.Failures.Count} failed; " +
                          $"literal {Sizes.Human(stats.LiteralBytes)}, matched {Sizes.Human(stats.MatchedBytes)}, wire {Sizes.Human(stats.WireBytes)}; " +
                          $"{stats.Elapsed.TotalSeconds:F2} s");
    }
}
