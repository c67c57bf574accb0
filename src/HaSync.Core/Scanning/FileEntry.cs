namespace HaSync.Scanning;

/// <summary>What a path is.</summary>
public enum EntryKind : byte
{
    /// <summary>A regular file.</summary>
    File = 1,
    /// <summary>A directory.</summary>
    Directory = 2,
    /// <summary>A symbolic link (replicated as a link, never followed).</summary>
    Symlink = 3,
}

/// <summary>Groups of mode bits.</summary>
public static class ModeBits
{
    /// <summary>Every bit a mode carries: set-user-id, set-group-id, sticky, and read/write/execute for owner, group and others (07777).</summary>
    public const uint All = 0xfff;
    /// <summary>Read, write and execute for owner, group and others (0777): no set-id or sticky bit.</summary>
    public const uint Permissions = 0x1ff;
    /// <summary>Set-user-id and set-group-id (06000): a passive's agent strips them unless started with <c>--allow-setid</c>.</summary>
    public const uint SetId = 0xc00;

    /// <summary>The bits an agent keeps as sent: all, or all but the set-id bits.</summary>
    public static uint Kept(bool keepSetId) => keepSetId ? All : All & ~SetId;
}

/// <summary>
/// One path of the watched set as seen on one node: what the active scans and what the agent reports in
/// its manifest, compared field by field. <see cref="Path"/> is the logical path ("/etc/bm/bm.ini"), the
/// same on both nodes; each node puts it under its own root.
/// </summary>
public sealed record FileEntry
{
    /// <summary>Logical path: absolute, normalised, under the node's root.</summary>
    public required string Path { get; init; }
    /// <summary>File, directory or symlink.</summary>
    public required EntryKind Kind { get; init; }
    /// <summary>Bytes (files only).</summary>
    public long Size { get; init; }
    /// <summary>Permission bits, setuid/setgid/sticky included (07777).</summary>
    public uint Mode { get; init; }
    /// <summary>Owner's numeric id.</summary>
    public uint Uid { get; init; }
    /// <summary>Group's numeric id.</summary>
    public uint Gid { get; init; }
    /// <summary>Owner's name, or "" when the id has none; names win over ids when the nodes' databases differ.</summary>
    public string Owner { get; init; } = "";
    /// <summary>Group's name, or "".</summary>
    public string Group { get; init; } = "";
    /// <summary>Modification time, seconds since the epoch.</summary>
    public long MtimeSeconds { get; init; }
    /// <summary>Modification time, nanoseconds part.</summary>
    public uint MtimeNanoseconds { get; init; }
    /// <summary>BLAKE2b-256 of the content (files only).</summary>
    public byte[]? Hash { get; init; }
    /// <summary>Link target (symlinks only), as stored: never resolved.</summary>
    public string? LinkTarget { get; init; }

    /// <summary>The passive's entries only: how it stands against what HaSync last wrote there (from the agent's journal).</summary>
    public Guard.LocalChange Local { get; init; }

    /// <summary>Hex of the content hash, or "-".</summary>
    public string HashHex => Hash is null ? "-" : Convert.ToHexStringLower(Hash);

    /// <summary>The mode as an admin reads it (e.g. 4755).</summary>
    public string ModeOctal => Convert.ToString(Mode, 8).PadLeft(4, '0');

    /// <summary>This entry with only the <paramref name="kept"/> mode bits (a symlink's mode means nothing and stays).</summary>
    public FileEntry WithModeKept(uint kept) => Kind == EntryKind.Symlink || (Mode & ~kept) == 0 ? this : this with { Mode = Mode & kept };

    /// <summary>owner:group, names where known.</summary>
    public string Ownership => $"{(Owner.Length > 0 ? Owner : Uid.ToString())}:{(Group.Length > 0 ? Group : Gid.ToString())}";
}
