using System.CommandLine;
using HaSync.Configuration;
using HaSync.Sync;
using Spectre.Console;

namespace HaSync.Cli.Commands;

/// <summary><c>hasync resync</c>: one-shot full resync of every (or one) target, with progress and a summary.</summary>
internal static class ResyncCommand
{
    public static Command Create()
    {
        var config = ConfigOption();
        var target = new Option<string?>("--target") { Description = "Only this target" };
        var noDelete = new Option<bool>("--no-delete") { Description = "Keep extra files on the passive even when the configuration says delete" };
        var command = new Command("resync", "Compare the watched set with each passive node and push what differs") { config, target, noDelete };
        command.SetAction(async (r, cancellationToken) =>
        {
            try
            {
                var loaded = ConfigLoader.Load(r.GetValue(config)!);
                bool delete = loaded.Delete && !r.GetValue(noDelete);
                int failed = 0;
                foreach (var t in Targets.Select(loaded, r.GetValue(target)))
                    if (!await RunTargetAsync(loaded, t, delete, cancellationToken))
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

    /// <summary>Resyncs one target with progress and a summary; false when anything failed (already reported).</summary>
    internal static async Task<bool> RunTargetAsync(HaSyncConfig config, TargetConfig target, bool delete, CancellationToken cancellationToken)
    {
        try
        {
            var stats = await Targets.WithSessionAsync(target, session => RunWithProgressAsync(config, session, delete, cancellationToken), cancellationToken);
            PrintSummary(target.Name, stats);
            return stats.Failures.Count == 0;
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

    private static async Task<ResyncStats> RunWithProgressAsync(HaSyncConfig config, AgentSession session, bool delete, CancellationToken cancellationToken)
    {
        if (Console.IsOutputRedirected)
        {
            var plain = new InlineProgress<ResyncStep>(step => Console.WriteLine($"{session.Target}: [{step.Done}/{step.Total}] {step.Action} {step.Path}"));
            return await Resync.RunAsync(config, session, delete, plain, cancellationToken: cancellationToken);
        }
        ResyncStats? stats = null;
        await AnsiConsole.Progress().AutoClear(true).StartAsync(async context =>
        {
            var task = context.AddTask($"{Markup.Escape(session.Target)}: comparing", maxValue: 1);
            var progress = new InlineProgress<ResyncStep>(step =>
            {
                task.MaxValue = step.Total;
                task.Value = step.Done;
                task.Description = $"{Markup.Escape(session.Target)}: {step.Action} {Markup.Escape(Truncate(step.Path, 40))}";
            });
            stats = await Resync.RunAsync(config, session, delete, progress, cancellationToken: cancellationToken);
            task.Value = task.MaxValue;
        });
        return stats!;
    }

    /// <summary>Reports on the caller's thread, in order (Progress&lt;T&gt; posts every report to the thread pool: one hop
    /// per file, and lines that may come out of order).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private static string Truncate(string path, int length) => path.Length <= length ? path : "…" + path[^(length - 1)..];

    private static void PrintSummary(string target, ResyncStats stats)
    {
        foreach (string failure in stats.Failures)
            Console.Error.WriteLine($"hasync resync: {target}: {failure}");
        Console.WriteLine($"{target}: {stats.Scanned} scanned, {stats.FilesSent} files sent, {stats.OthersCreated} dirs/links made, " +
                          $"{stats.MetadataFixed} metadata fixed, {stats.Deleted} deleted, {stats.Failures.Count} failed; " +
                          $"literal {stats.LiteralBytes:N0} B, matched {stats.MatchedBytes:N0} B, wire {stats.WireBytes:N0} B; " +
                          $"{stats.Elapsed.TotalSeconds:F2} s");
    }
}
