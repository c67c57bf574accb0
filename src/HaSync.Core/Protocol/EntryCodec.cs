using HaSync.Scanning;

namespace HaSync.Protocol;

/// <summary>A <see cref="FileEntry"/> on the wire.</summary>
public static class EntryCodec
{
    /// <summary>Appends an entry.</summary>
    public static PayloadWriter Entry(this PayloadWriter writer, FileEntry entry) => writer
        .Text(entry.Path).U8((byte)entry.Kind).I64(entry.Size).U32(entry.Mode)
        .U32(entry.Uid).U32(entry.Gid).Text(entry.Owner).Text(entry.Group)
        .I64(entry.MtimeSeconds).U32(entry.MtimeNanoseconds)
        .Bytes(entry.Hash ?? []).Text(entry.LinkTarget ?? "");

    /// <summary>Reads an entry, checking what can be checked here (kind, sizes, mode bits, hash length).</summary>
    public static FileEntry Entry(ref PayloadReader reader)
    {
        string path = reader.Text("path");
        var kind = (EntryKind)reader.U8("kind");
        if (!Enum.IsDefined(kind))
            throw new ProtocolException($"entry {path}: unknown kind {(byte)kind}");
        long size = reader.I64("size");
        uint mode = reader.U32("mode");
        if (size < 0 || mode > 0xFFF)
            throw new ProtocolException($"entry {path}: impossible size {size} or mode {mode}");
        uint uid = reader.U32("uid"), gid = reader.U32("gid");
        string owner = reader.Text("owner"), group = reader.Text("group");
        long seconds = reader.I64("mtime");
        uint nanoseconds = reader.U32("mtime_nsec");
        if (nanoseconds >= 1_000_000_000)
            throw new ProtocolException($"entry {path}: nanoseconds {nanoseconds} out of range");
        byte[] hash = reader.Bytes("hash").ToArray();
        if (hash.Length is not (0 or 32))
            throw new ProtocolException($"entry {path}: hash of {hash.Length} bytes (expected 0 or 32)");
        string target = reader.Text("link_target");
        return new FileEntry
        {
            Path = path, Kind = kind, Size = size, Mode = mode, Uid = uid, Gid = gid, Owner = owner, Group = group,
            MtimeSeconds = seconds, MtimeNanoseconds = nanoseconds,
            Hash = hash.Length == 0 ? null : hash,
            LinkTarget = kind == EntryKind.Symlink ? target : null,
        };
    }
}
