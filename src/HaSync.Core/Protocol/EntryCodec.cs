using System.Text;
using HaSync.Scanning;

namespace HaSync.Protocol;

/// <summary>
/// A <see cref="FileEntry"/> on the wire, compactly: varints; the path and link target as the length shared
/// with the previous entry's plus the rest; owner, group and mtime seconds flagged when equal to the previous
/// entry's. "Previous" is the entry sent before it in the same direction of the same session: both ends
/// handle frames strictly in order, so each side keeps one codec per direction (the writer's under its write
/// lock, the reader's on its reading thread), and consecutive requests about one directory share their prefix.
/// A manifest of /etc comes to less than rsync's file list.
/// </summary>
public sealed class EntryCodec
{
    [Flags]
    private enum Same : byte { None = 0, Owner = 1, Group = 2, MtimeSeconds = 4, HasHash = 8, HasTarget = 16 }

    private const int HashLength = 32;
    /// <summary>PATH_MAX: no path or link target is longer, so no decoded one may be (a chain of shared prefixes could
    /// otherwise grow one without bound from little input).</summary>
    public const int MaxPathBytes = 4096;
    private const int MaxNameBytes = 256; // a user or group name
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private FileEntry? _previous;
    private byte[] _previousPath = [];
    private byte[] _previousTarget = [];

    /// <summary>Appends an entry, encoded against the one this codec wrote before.</summary>
    public void Write(PayloadWriter writer, FileEntry entry)
    {
        var p = _previous;
        var flags = Same.None;
        if (p is not null && p.Uid == entry.Uid && p.Owner == entry.Owner) flags |= Same.Owner;
        if (p is not null && p.Gid == entry.Gid && p.Group == entry.Group) flags |= Same.Group;
        if (p is not null && p.MtimeSeconds == entry.MtimeSeconds) flags |= Same.MtimeSeconds;
        if (entry.Hash is not null) flags |= Same.HasHash;
        if (entry.LinkTarget is not null) flags |= Same.HasTarget;

        byte[] path = Encoding.UTF8.GetBytes(entry.Path);
        writer.U8((byte)flags).U8((byte)entry.Kind);
        WriteShared(writer, path, _previousPath);
        writer.VarU((ulong)entry.Size).VarU(entry.Mode);
        if (!flags.HasFlag(Same.Owner)) writer.VarU(entry.Uid).VarBytes(Encoding.UTF8.GetBytes(entry.Owner));
        if (!flags.HasFlag(Same.Group)) writer.VarU(entry.Gid).VarBytes(Encoding.UTF8.GetBytes(entry.Group));
        if (!flags.HasFlag(Same.MtimeSeconds)) writer.VarS(entry.MtimeSeconds);
        writer.VarU(entry.MtimeNanoseconds);
        if (entry.Hash is not null) writer.Raw(entry.Hash);
        if (entry.LinkTarget is not null)
        {
            byte[] target = Encoding.UTF8.GetBytes(entry.LinkTarget);
            WriteShared(writer, target, _previousTarget);
            _previousTarget = target;
        }
        _previous = entry;
        _previousPath = path;
    }

    /// <summary>Reads an entry written by <see cref="Write"/>, checking what can be checked here.</summary>
    public FileEntry Read(ref PayloadReader reader)
    {
        var flags = (Same)reader.U8("flags");
        var kind = (EntryKind)reader.U8("kind");
        byte[] pathBytes = ReadShared(ref reader, _previousPath, "path");
        string path = Decode(pathBytes, "path");
        if (!Defined<EntryKind>.Is(kind))
            throw new ProtocolException($"entry {path}: unknown kind {(byte)kind}");
        if ((flags & (Same.Owner | Same.Group | Same.MtimeSeconds)) != 0 && _previous is null)
            throw new ProtocolException($"entry {path}: refers to a previous entry, but it is the first");
        ulong size = reader.VarU("size"), mode = reader.VarU("mode");
        if (size > long.MaxValue || mode > 0xFFF)
            throw new ProtocolException($"entry {path}: impossible size {size} or mode {mode}");
        uint uid = flags.HasFlag(Same.Owner) ? _previous!.Uid : Id(reader.VarU("uid"), path);
        string owner = flags.HasFlag(Same.Owner) ? _previous!.Owner : Decode(Name(reader.VarBytes("owner"), "owner"), "owner");
        uint gid = flags.HasFlag(Same.Group) ? _previous!.Gid : Id(reader.VarU("gid"), path);
        string group = flags.HasFlag(Same.Group) ? _previous!.Group : Decode(Name(reader.VarBytes("group"), "group"), "group");
        long seconds = flags.HasFlag(Same.MtimeSeconds) ? _previous!.MtimeSeconds : reader.VarS("mtime");
        ulong nanoseconds = reader.VarU("mtime_nsec");
        if (nanoseconds >= 1_000_000_000)
            throw new ProtocolException($"entry {path}: nanoseconds {nanoseconds} out of range");
        byte[]? hash = flags.HasFlag(Same.HasHash) ? reader.Raw(HashLength, "hash").ToArray() : null;
        string? target = null;
        if (flags.HasFlag(Same.HasTarget))
        {
            byte[] targetBytes = ReadShared(ref reader, _previousTarget, "link_target");
            target = Decode(targetBytes, "link_target");
            _previousTarget = targetBytes;
        }
        var entry = new FileEntry
        {
            Path = path, Kind = kind, Size = (long)size, Mode = (uint)mode, Uid = uid, Gid = gid, Owner = owner, Group = group,
            MtimeSeconds = seconds, MtimeNanoseconds = (uint)nanoseconds, Hash = hash,
            LinkTarget = kind == EntryKind.Symlink ? target ?? throw new ProtocolException($"entry {path}: symlink without a target") : null,
        };
        _previous = entry;
        _previousPath = pathBytes;
        return entry;
    }

    private static void WriteShared(PayloadWriter writer, byte[] value, byte[] previous)
    {
        int shared = value.AsSpan().CommonPrefixLength(previous);
        writer.VarU((ulong)shared).VarBytes(value.AsSpan(shared));
    }

    private static byte[] ReadShared(ref PayloadReader reader, byte[] previous, string field)
    {
        int shared = reader.VarLength(field + " shared");
        if (shared > previous.Length)
            throw new ProtocolException($"entry field '{field}': shares {shared} bytes with a previous value of {previous.Length}");
        var rest = reader.VarBytes(field);
        if ((long)shared + rest.Length > MaxPathBytes)
            throw new ProtocolException($"entry field '{field}': {(long)shared + rest.Length} bytes, more than the {MaxPathBytes} a path may have");
        return [.. previous.AsSpan(0, shared), .. rest];
    }

    private static ReadOnlySpan<byte> Name(ReadOnlySpan<byte> bytes, string field) =>
        bytes.Length <= MaxNameBytes ? bytes : throw new ProtocolException($"entry field '{field}': {bytes.Length} bytes, more than the {MaxNameBytes} a name may have");

    private static uint Id(ulong value, string path) =>
        value <= uint.MaxValue ? (uint)value : throw new ProtocolException($"entry {path}: id {value} out of range");

    private static string Decode(ReadOnlySpan<byte> bytes, string field)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ProtocolException($"entry field '{field}' is not valid UTF-8");
        }
    }
}
