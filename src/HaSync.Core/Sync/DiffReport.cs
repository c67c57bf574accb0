using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using DiffPlex;
using HaSync.Configuration;
using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>One path of a diff report.</summary>
public sealed record DiffItem
{
    /// <summary>Logical path.</summary>
    public required string Path { get; init; }
    /// <summary>identical, missing, extra, content, metadata, absent (listed in <c>paths</c>, on neither node), setid (the rest is identical, but the passive's agent strips
    /// the active's set-user-id or set-group-id bits), or conflict: the passive changed the path on its own (or HaSync never
    /// wrote it there) and a push would leave it as it is.</summary>
    public required string Status { get; init; }
    /// <summary>For a conflict: what the passive did, in words.</summary>
    public string? Conflict { get; init; }
    /// <summary>What differs: type, content, target, mode, owner, group, mtime; setid when the passive does not keep the
    /// active's set-id bits (the modes shown are each node's own).</summary>
    public required IReadOnlyList<string> Fields { get; init; }
    /// <summary>The active's side.</summary>
    public DiffSide? Active { get; init; }
    /// <summary>The passive's side.</summary>
    public DiffSide? Passive { get; init; }
    /// <summary>True when the content is secret (a redact pattern or no read permission for group and others): never printed.</summary>
    public bool Redacted { get; init; }
    /// <summary>Unified diff of text content, passive (---) to active (+++).</summary>
    public string? UnifiedDiff { get; init; }
}

/// <summary>One node's entry at a path, as a diff shows it: sizes in bytes, times as ISO 8601 UTC (nanoseconds kept).</summary>
public sealed record DiffSide
{
    /// <summary>file, directory or symlink.</summary>
    public required string Kind { get; init; }
    /// <summary>owner:group, names where known.</summary>
    public required string Owner { get; init; }
    /// <summary>The mode as an admin reads it (e.g. 0644); absent for a symlink.</summary>
    public string? Mode { get; init; }
    /// <summary>Bytes (files only).</summary>
    public long? Size { get; init; }
    /// <summary>Modification time (files and directories), e.g. 2026-12-02T01:41:35.123456789Z.</summary>
    public string? Mtime { get; init; }
    /// <summary>BLAKE2b-256 of the content, hex (files only; shown for secrets too: a hash reveals nothing of them).</summary>
    public string? Hash { get; init; }
    /// <summary>The link's target (symlinks only), "(redacted)" for a secret path.</summary>
    public string? Target { get; init; }

    /// <summary>An mtime in ISO 8601 UTC, nanoseconds kept.</summary>
    public static string Time(long seconds, uint nanoseconds) =>
        $"{DateTimeOffset.FromUnixTimeSeconds(seconds).UtcDateTime:yyyy-MM-dd'T'HH:mm:ss}.{nanoseconds:D9}Z";
}

/// <summary>
/// <c>hasync diff</c>'s report: a dry run that never writes on either node. Text files that differ get a
/// unified diff from the passive's copy to the active's; secret files (a <c>redact</c> pattern, or a mode that
/// lets neither group nor others read) only say "content differs" and show hashes.
/// </summary>
public static class DiffReport
{
    /// <summary>Text diffs are shown up to this size.</summary>
    public const int MaxTextDiffBytes = 1 << 20;

    /// <summary>Builds the report for one target.</summary>
    public static async Task<List<DiffItem>> BuildAsync(HaSyncConfig config, AgentSession session, CancellationToken cancellationToken = default)
    {
        var redact = new PathFilter(config.Redact);
        var items = new List<DiffItem>();
        foreach (var d in await Resync.CompareAsync(config, session, cancellationToken).ConfigureAwait(false))
        {
            bool secret = redact.Matches(d.Path) || IsPrivate(d.Active) || IsPrivate(d.Passive);
            string? unified = null;
            if (d.Status == PathStatus.ContentDiffers && !secret && d.Fields.Contains("content")
                && d.Active!.Size <= MaxTextDiffBytes && d.Passive!.Size <= MaxTextDiffBytes)
            {
                byte[] mine = await File.ReadAllBytesAsync(TreeWalker.FullPath(config.SourceRoot, d.Path), cancellationToken).ConfigureAwait(false);
                byte[] theirs = await session.RequestContent(d.Path, MaxTextDiffBytes).ConfigureAwait(false);
                if (IsText(mine) && IsText(theirs))
                    unified = UnifiedDiff.Format(d.Path, Encoding.UTF8.GetString(theirs), Encoding.UTF8.GetString(mine));
            }
            string? conflict = ConflictOf(d, config.Delete);
            string status = conflict is not null ? "conflict" : d is { Status: PathStatus.Identical, NotKept: not 0 } ? "setid" : StatusName(d.Status);
            items.Add(new DiffItem
            {
                Path = d.Path,
                Status = status,
                Conflict = conflict,
                Fields = d.NotKept == 0 ? d.Fields : [.. d.Fields, "setid"],
                Active = Describe(d.NotKept == 0 ? d.Active : d.Active! with { Mode = d.Active!.Mode | d.NotKept }, secret),
                Passive = Describe(d.Passive, secret),
                Redacted = secret,
                UnifiedDiff = unified,
            });
        }
        // A listed path neither node has is no difference between them, but what was listed is not being synced.
        foreach (string path in Configuration.ConfigCheck.MissingPaths(config).Where(p => !items.Any(i => i.Path == p)))
            items.Add(new DiffItem { Path = path, Status = "absent", Fields = [] });
        return items;
    }

    /// <summary>Why a push of <paramref name="d"/> would be refused by the passive's agent, or null: its copy differs and
    /// is not what HaSync last wrote there.</summary>
    public static string? ConflictOf(PathDifference d, bool delete)
    {
        if (d.Passive is not { Local: not Guard.LocalChange.None } passive)
            return null;
        if (d.Status is not (PathStatus.ContentDiffers or PathStatus.Extra) || (d.Status == PathStatus.Extra && !delete))
            return null;
        return passive.Local == Guard.LocalChange.Edited
            ? "changed on the passive since HaSync last wrote it"
            : "on the passive before HaSync wrote it (first contact; seed with 'hasync resync --force')";
    }

    /// <summary>Status names as printed and in JSON.</summary>
    public static string StatusName(PathStatus status) => status switch
    {
        PathStatus.Identical => "identical",
        PathStatus.Missing => "missing",
        PathStatus.Extra => "extra",
        PathStatus.ContentDiffers => "content",
        _ => "metadata",
    };

    private static bool IsPrivate(FileEntry? entry) => entry is { Kind: EntryKind.File } && (entry.Mode & 0x24) == 0; // no g+r, no o+r

    private static bool IsText(byte[] data) =>
        !data.AsSpan(0, Math.Min(data.Length, 8192)).Contains((byte)0) && System.Text.Unicode.Utf8.IsValid(data);

    private static DiffSide? Describe(FileEntry? entry, bool secret)
    {
        if (entry is null)
            return null;
        bool file = entry.Kind == EntryKind.File;
        return new DiffSide
        {
            Kind = entry.Kind.ToString().ToLowerInvariant(),
            Owner = entry.Ownership,
            Mode = entry.Kind == EntryKind.Symlink ? null : entry.ModeOctal,
            Size = file ? entry.Size : null,
            Mtime = entry.Kind == EntryKind.Symlink ? null : DiffSide.Time(entry.MtimeSeconds, entry.MtimeNanoseconds),
            Hash = file ? entry.HashHex : null,
            Target = entry.LinkTarget is { } target ? secret ? "(redacted)" : target : null,
        };
    }

    /// <summary>The report as a JSON document: target name, in_sync, counts per status (every path), and the items that
    /// differ (every item with <paramref name="all"/>).</summary>
    public static string ToJson(string target, IReadOnlyList<DiffItem> items, bool all = false) => JsonSerializer.Serialize(new DiffDocument(
        target,
        items.All(i => i.Status == "identical"),
        items.GroupBy(i => i.Status).ToDictionary(g => g.Key, g => g.Count()),
        all ? items : [.. items.Where(i => i.Status != "identical")]), DiffJson.Default.DiffDocument);
}

/// <summary><c>hasync diff --json</c>'s document for one target.</summary>
public sealed record DiffDocument(string Target, bool InSync, Dictionary<string, int> Counts, IReadOnlyList<DiffItem> Items);

/// <summary>The diff report's JSON, generated at build time (no reflection at run time: the binary is compiled ahead of time).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DiffDocument))]
internal sealed partial class DiffJson : JsonSerializerContext;

/// <summary>A unified diff (3 lines of context) in the format of <c>diff -u</c>.</summary>
public static class UnifiedDiff
{
    private const int Context = 3;

    /// <summary>The diff from <paramref name="before"/> (passive) to <paramref name="after"/> (active).</summary>
    public static string Format(string path, string before, string after)
    {
        if (before.EndsWith('\n') && after.EndsWith('\n'))
            (before, after) = (before[..^1], after[..^1]); // a shared final newline is not a line of its own
        var a = SplitLines(before);
        var b = SplitLines(after);
        var blocks = new Differ().CreateLineDiffs(before, after, ignoreWhitespace: false, ignoreCase: false).DiffBlocks;
        var text = new StringBuilder($"--- passive:{path}\n+++ active:{path}\n");
        int i = 0;
        while (i < blocks.Count)
        {
            // Group blocks whose context would touch into one hunk.
            int j = i;
            while (j + 1 < blocks.Count && blocks[j + 1].DeleteStartA - (blocks[j].DeleteStartA + blocks[j].DeleteCountA) <= 2 * Context)
                j++;
            int startA = Math.Max(0, blocks[i].DeleteStartA - Context);
            int endA = Math.Min(a.Count, blocks[j].DeleteStartA + blocks[j].DeleteCountA + Context);
            int startB = Math.Max(0, blocks[i].InsertStartB - Context);
            int endB = Math.Min(b.Count, blocks[j].InsertStartB + blocks[j].InsertCountB + Context);
            text.Append($"@@ -{startA + 1},{endA - startA} +{startB + 1},{endB - startB} @@\n");
            int lineA = startA;
            for (int k = i; k <= j; k++)
            {
                var block = blocks[k];
                for (; lineA < block.DeleteStartA; lineA++)
                    text.Append(' ').Append(a[lineA]).Append('\n');
                for (int d = 0; d < block.DeleteCountA; d++, lineA++)
                    text.Append('-').Append(a[lineA]).Append('\n');
                for (int n = 0; n < block.InsertCountB; n++)
                    text.Append('+').Append(b[block.InsertStartB + n]).Append('\n');
            }
            for (; lineA < endA; lineA++)
                text.Append(' ').Append(a[lineA]).Append('\n');
            i = j + 1;
        }
        return text.ToString();
    }

    // Split exactly as DiffPlex's line chunker does, so its block indices address these lists.
    private static List<string> SplitLines(string text) => [.. text.Split(["\r\n", "\r", "\n"], StringSplitOptions.None)];
}
