using HaSync.Scanning;

namespace HaSync.Sync;

/// <summary>How a path on the passive compares with the active.</summary>
public enum PathStatus
{
    /// <summary>Same kind, content and metadata.</summary>
    Identical,
    /// <summary>On the active only.</summary>
    Missing,
    /// <summary>On the passive only.</summary>
    Extra,
    /// <summary>Different content, link target, or kind (file vs directory vs symlink).</summary>
    ContentDiffers,
    /// <summary>Same content; owner, group, mode or mtime differ.</summary>
    MetadataDiffers,
}

/// <summary>One path's comparison. <see cref="Fields"/> names what differs: type, content, target, mode, owner, group, mtime.
/// <see cref="Active"/> is what the passive should hold: the active's entry, less the mode bits the passive does not keep.</summary>
public sealed record PathDifference(string Path, PathStatus Status, FileEntry? Active, FileEntry? Passive, IReadOnlyList<string> Fields)
{
    /// <summary>True when the passive holds another kind of entry at this path.</summary>
    public bool KindChanged => Fields.Contains("type");

    /// <summary>Mode bits the active has here that the passive does not keep (set-id bits its agent strips), or 0.
    /// They are not a difference to push; <c>diff</c> reports them.</summary>
    public uint NotKept { get; init; }
}

/// <summary>
/// Compares the active's scan with the passive's manifest, path by path. Never size and mtime alone: file
/// content is compared by hash, so a same-size rewrite within the same second is seen. Directory mtimes are
/// compared too, as rsync -a keeps them (the agent gives each directory it changes the active's time, or back its
/// own, once a batch is in place); symlink modes do not exist on Linux, and their times are not kept. The mode bits a
/// passive does not keep (<see cref="ModeBits.SetId"/> unless its agent allows them) are taken off the active's side
/// first: the passive is compared with what it can hold.
/// </summary>
public static class Comparison
{
    /// <summary>Both lists sorted by path (as <see cref="TreeWalker"/> returns them); every path of either side, once.
    /// <paramref name="keptMode"/>: the mode bits the passive keeps (<see cref="AgentSession.KeptModeBits"/>).</summary>
    public static List<PathDifference> Compare(IReadOnlyList<FileEntry> active, IReadOnlyList<FileEntry> passive, uint keptMode = ModeBits.All)
    {
        var result = new List<PathDifference>(Math.Max(active.Count, passive.Count));
        int a = 0, p = 0;
        while (a < active.Count || p < passive.Count)
        {
            int order = a == active.Count ? 1 : p == passive.Count ? -1 : string.CompareOrdinal(active[a].Path, passive[p].Path);
            if (order < 0)
            {
                var wanted = active[a++];
                result.Add(new(wanted.Path, PathStatus.Missing, wanted.WithModeKept(keptMode), null, []) { NotKept = NotKept(wanted, keptMode) });
            }
            else if (order > 0)
                result.Add(new(passive[p].Path, PathStatus.Extra, null, passive[p++], []));
            else
                result.Add(Compare(active[a++], passive[p++], keptMode));
        }
        return result;
    }

    /// <summary>Compares one path present on both nodes.</summary>
    public static PathDifference Compare(FileEntry active, FileEntry passive, uint keptMode = ModeBits.All)
    {
        uint notKept = NotKept(active, keptMode);
        active = active.WithModeKept(keptMode);
        var fields = new List<string>();
        if (active.Kind != passive.Kind)
            fields.Add("type");
        else if (active.Kind == EntryKind.File && (active.Size != passive.Size || !SameHash(active.Hash, passive.Hash)))
            fields.Add("content");
        else if (active.Kind == EntryKind.Symlink && active.LinkTarget != passive.LinkTarget)
            fields.Add("target");
        bool contentDiffers = fields.Count > 0;

        if (active.Kind == passive.Kind)
        {
            if (active.Kind != EntryKind.Symlink && active.Mode != passive.Mode)
                fields.Add("mode");
            if (!SameId(active.Owner, active.Uid, passive.Owner, passive.Uid))
                fields.Add("owner");
            if (!SameId(active.Group, active.Gid, passive.Group, passive.Gid))
                fields.Add("group");
            if (active.Kind != EntryKind.Symlink && (active.MtimeSeconds != passive.MtimeSeconds || active.MtimeNanoseconds != passive.MtimeNanoseconds))
                fields.Add("mtime");
        }
        var status = contentDiffers ? PathStatus.ContentDiffers : fields.Count > 0 ? PathStatus.MetadataDiffers : PathStatus.Identical;
        return new(active.Path, status, active, passive, fields) { NotKept = notKept };
    }

    private static uint NotKept(FileEntry active, uint keptMode) => active.Kind == EntryKind.Symlink ? 0 : active.Mode & ~keptMode;

    private static bool SameHash(byte[]? a, byte[]? b) => a is not null && b is not null && a.AsSpan().SequenceEqual(b);

    // Names win when both nodes know the id by a name (uids may differ between nodes); else the numbers decide.
    private static bool SameId(string nameA, uint idA, string nameB, uint idB) =>
        nameA.Length > 0 && nameB.Length > 0 ? nameA == nameB : idA == idB;
}
