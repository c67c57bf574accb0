using System.CommandLine;
using HaSync.Configuration;
using HaSync.Sync;

namespace HaSync.Cli.Commands;

/// <summary><c>hasync diff</c>: dry-run report of what differs on each passive; never writes. Exit 0 in sync, 1 differs, 2 error.</summary>
internal static class DiffCommand
{
    public static Command Create()
    {
        var config = ResyncCommand.ConfigOption();
        var target = new Option<string?>("--target") { Description = "Only this target" };
        var json = new Option<bool>("--json") { Description = "Machine-readable report" };
        var all = new Option<bool>("--all") { Description = "List identical paths too" };
        var command = new Command("diff", "Report what differs on the passive node(s); writes nothing") { config, target, json, all };
        command.SetAction(async (r, cancellationToken) =>
        {
            try
            {
                var loaded = ConfigLoader.Load(r.GetValue(config)!);
                bool differs = false;
                foreach (var t in Targets.Select(loaded, r.GetValue(target)))
                    differs |= await DiffTargetAsync(loaded, t, r.GetValue(json), r.GetValue(all), cancellationToken);
                return differs ? 1 : 0;
            }
            catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"hasync diff: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>Prints one target's report; true when anything differs.</summary>
    internal static async Task<bool> DiffTargetAsync(HaSyncConfig config, TargetConfig target, bool json, bool all, CancellationToken cancellationToken)
    {
        var items = await Targets.WithSessionAsync(target, session => DiffReport.BuildAsync(config, session, cancellationToken), cancellationToken);
        if (json)
            Console.WriteLine(DiffReport.ToJson(target.Name, items, all));
        else
            Print(target.Name, items, all);
        return items.Any(i => i.Status != "identical");
    }

    private static void Print(string target, List<DiffItem> items, bool all)
    {
        foreach (var item in items.Where(i => all || i.Status != "identical"))
        {
            string detail = item.Status switch
            {
                "conflict" => $"CONFLICT: {item.Conflict}; {(item.Fields.Count > 0 ? string.Join(", ", item.Fields) + " differs" : "gone on the active")}" + Changes(item),
                "content" when item.Redacted => $"content differs (secret: active {Hash(item.Active)}, passive {Hash(item.Passive)})",
                "content" => $"{string.Join(", ", item.Fields)} differs" + Changes(item),
                "metadata" => $"metadata differs: {string.Join(", ", item.Fields)}" + Changes(item),
                "setid" => $"set-id bits not kept: mode {Get(item.Active, "mode")} on the active, {Get(item.Passive, "mode")} on the passive (its agent strips them; start it with --allow-setid to keep them)",
                "missing" => "missing on passive",
                "absent" => "listed in paths, but on neither node (a typo, or not installed yet?)",
                "extra" => "extra on passive",
                _ => "identical",
            };
            if (item.Status != "setid" && item.Fields.Contains("setid"))
                detail += "; the passive will not keep its set-id bits (its agent runs without --allow-setid)";
            Console.WriteLine($"{target}: {item.Path}: {detail}");
            if (item.UnifiedDiff is { } unified)
                Console.Write(unified);
        }
        int differing = items.Count(i => i.Status != "identical");
        Console.WriteLine(differing == 0
            ? $"{target}: in sync ({items.Count} paths)"
            : $"{target}: {differing} of {items.Count} paths differ ({string.Join(", ", items.Where(i => i.Status != "identical").GroupBy(i => i.Status).Select(g => $"{g.Count()} {g.Key}"))})");
    }

    private static string Hash(DiffSide? side) => side?.Hash is { Length: >= 16 } h ? h[..16] + "…" : "-";

    private static string Changes(DiffItem item)
    {
        var parts = item.Fields.Where(f => f is "mode" or "owner" or "mtime" or "target" or "type" or "group")
            .Select(f => f == "group" ? "owner" : f == "type" ? "kind" : f)
            .Distinct()
            .Select(f => $"{f} {Get(item.Passive, f)} -> {Get(item.Active, f)}");
        string text = string.Join("; ", parts);
        return text.Length == 0 ? "" : $" ({text})";
    }

    private static string Get(DiffSide? side, string field) => (field switch
    {
        "kind" => side?.Kind,
        "owner" => side?.Owner,
        "mode" => side?.Mode,
        "mtime" => side?.Mtime,
        "target" => side?.Target,
        _ => null,
    }) ?? "?";
}
