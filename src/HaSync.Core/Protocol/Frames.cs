using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace HaSync.Protocol;

/// <summary>A malformed or unexpected frame; the message says what was being read.</summary>
public sealed class ProtocolException(string message, string? textInstead = null) : HaSyncException(message)
{
    /// <summary>When printable text came where a message should begin (a remote shell's banner or motd): that text.</summary>
    public string? TextInstead { get; } = textInstead;
}

/// <summary>Frame types of the HaSync agent protocol (version <see cref="Wire.Version"/>).</summary>
public enum FrameType : byte
{
    /// <summary>Sender -> agent, first frame: magic, version.</summary>
    Hello = 1,
    /// <summary>Agent -> sender: magic, version, root, allowed paths, the highest epoch the agent's node knows.</summary>
    Welcome = 2,
    /// <summary>id, paths: list the watched set under these paths.</summary>
    ManifestRequest = 10,
    /// <summary>id, entries (each encoded against the one before it, and followed by its journal mark).</summary>
    ManifestEntries = 11,
    /// <summary>id: no more entries.</summary>
    ManifestEnd = 12,
    /// <summary>id, path: the librsync signature of the passive's copy, as Data frames.</summary>
    SignatureRequest = 20,
    /// <summary>id, path, max bytes: the passive's content, as Data frames (for diff).</summary>
    ReadRequest = 21,
    /// <summary>id, path: the free space of the passive's file system that holds (or would hold) the path, as Data frames:
    /// bytes, then inodes, each a big-endian u64 (inodes: <see cref="ulong.MaxValue"/> when the file system does not count them).</summary>
    SpaceRequest = 22,
    /// <summary>id, entry, encoding; then Data frames and DataEnd.</summary>
    PutFile = 30,
    /// <summary>id, entry: create a directory or fix its owner and mode.</summary>
    MakeDirectory = 31,
    /// <summary>id, entry: create or replace a symlink.</summary>
    MakeSymlink = 32,
    /// <summary>id, entry: owner, mode, mtime only.</summary>
    SetMetadata = 33,
    /// <summary>id, path: remove a file, symlink or empty directory.</summary>
    Delete = 34,
    /// <summary>id: the end of a burst; commit what is pending (durably) and answer everything.</summary>
    Flush = 35,
    /// <summary>id, epoch, adopt flag: the sender's term as the active node; no write is accepted before one is.</summary>
    Claim = 36,
    /// <summary>id, bytes.</summary>
    Data = 50,
    /// <summary>id.</summary>
    DataEnd = 51,
    /// <summary>count, then per answer: id (as a difference from the previous id), status, message if not Ok.</summary>
    Acks = 60,
    /// <summary>Either way, no payload, never answered: sent by a side that has sent nothing for a heartbeat interval, so that
    /// the other knows it is there. Readers skip it wherever it comes (between a file's Data frames too).</summary>
    Heartbeat = 98,
    /// <summary>Sender is done; the agent exits 0.</summary>
    Goodbye = 99,
}

/// <summary>Outcome of a request.</summary>
public enum AckStatus : byte
{
    /// <summary>Done.</summary>
    Ok = 0,
    /// <summary>Refused or failed; the message says why. The session goes on.</summary>
    Failed = 1,
    /// <summary>The patched file's hash differs from the sender's: send the whole file instead.</summary>
    HashMismatch = 2,
    /// <summary>The passive's copy was changed there since HaSync wrote it (or never written by HaSync): kept, not
    /// overwritten; the message says where the incoming version was put.</summary>
    Conflict = 3,
    /// <summary>The sender's epoch is no longer the highest the passive knows: another node has become active.</summary>
    Fenced = 4,
    /// <summary>Failed for lack of space (or inodes, or quota) on the passive's file system; nothing of it stands there.</summary>
    NoSpace = 5,
}

/// <summary>How a PutFile's data is encoded.</summary>
public enum PutEncoding : byte
{
    /// <summary>The file's content as is.</summary>
    Whole = 0,
    /// <summary>A librsync delta against the passive's current copy.</summary>
    Delta = 1,
}

/// <summary>Wire constants.</summary>
public static class Wire
{
    /// <summary>"HSYN".</summary>
    public const uint Magic = 0x4853594E;
    /// <summary>Protocol version; both sides must speak the same.</summary>
    public const ushort Version = 4;
    /// <summary>Largest frame accepted (type + payload); larger lengths are corrupt or hostile.</summary>
    public const int MaxFrameLength = 1 << 20;
    /// <summary>File data travels in chunks of this size.</summary>
    public const int DataChunk = 256 * 1024;

    /// <summary>A message of this type in an admin's words (errors never name the protocol's frame types).</summary>
    public static string Describe(FrameType type) => type switch
    {
        FrameType.Hello => "the sender's hello",
        FrameType.Welcome => "the agent's welcome",
        FrameType.ManifestRequest => "a request for the passive's list of files",
        FrameType.ManifestEntries or FrameType.ManifestEnd => "the passive's list of files",
        FrameType.SignatureRequest => "a request for a file's block signature",
        FrameType.ReadRequest => "a request for a file's content",
        FrameType.SpaceRequest => "a request for the passive's free space",
        FrameType.PutFile => "a file sent",
        FrameType.MakeDirectory => "a directory to make",
        FrameType.MakeSymlink => "a symlink to make",
        FrameType.SetMetadata => "an owner, mode and time to set",
        FrameType.Delete => "a path to delete",
        FrameType.Flush => "the end of a batch",
        FrameType.Claim => "the active's claim of its term",
        FrameType.Data or FrameType.DataEnd => "a file's data",
        FrameType.Acks => "the agent's answers",
        FrameType.Heartbeat => "a heartbeat",
        FrameType.Goodbye => "the sender's goodbye",
        _ => $"a message of type {(byte)type}",
    };

    /// <summary>How long a sender waits for the agent's welcome after starting it (ssh connects, logs in and starts the agent,
    /// which the process start-up of a loaded node may slow down): past it, the session attempt has failed.</summary>
    public static readonly TimeSpan WelcomeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How often a quiet side sends a heartbeat, unless the target's <c>heartbeat_ms</c> says otherwise.</summary>
    public static readonly TimeSpan DefaultHeartbeat = TimeSpan.FromSeconds(3);

    /// <summary>Heartbeat intervals a hello may carry.</summary>
    public static readonly TimeSpan MinHeartbeat = TimeSpan.FromMilliseconds(100), MaxHeartbeat = TimeSpan.FromSeconds(60);

    /// <summary>How long either side waits, hearing nothing (not even a heartbeat, nor the rest of a frame begun), before it
    /// takes the other for gone: five heartbeats.</summary>
    public static TimeSpan SilenceLimit(TimeSpan heartbeat) => heartbeat * 5;
}

/// <summary>One frame: type and payload.</summary>
public readonly record struct Frame(FrameType Type, ReadOnlyMemory<byte> Payload)
{
    /// <summary>A reader over the payload.</summary>
    public PayloadReader Reader() => new(Payload, Type);
}

/// <summary>
/// Reads frames: a big-endian uint32 length of (type + payload), the type byte, the payload. Synchronous:
/// each side reads its stream on one dedicated thread (the agent's main thread, the session's reader thread),
/// as rsync does; blocking pipe reads are what those threads are for.
/// </summary>
public sealed class FrameReader(Stream input)
{
    private readonly byte[] _header = new byte[5];
    private long _lastHeard = Environment.TickCount64;

    /// <summary>Bytes read so far (for the wire statistics).</summary>
    public long BytesRead { get; private set; }

    /// <summary>How long since the last frame (a heartbeat included) came in whole.</summary>
    public TimeSpan Silence => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastHeard));

    /// <summary>The next frame other than a heartbeat, or null at a clean end of stream (between frames).</summary>
    /// <exception cref="ProtocolException">Truncated frame, bad length, unknown type.</exception>
    public Frame? Read()
    {
        while (true)
        {
            var frame = ReadAny();
            if (frame is not { Type: FrameType.Heartbeat })
                return frame;
        }
    }

    private Frame? ReadAny()
    {
        int got = input.ReadAtLeast(_header, 5, throwOnEndOfStream: false);
        if (got == 0)
            return null;
        if (got < 5)
            throw new ProtocolException($"reading a message's header: connection closed after {got} of 5 bytes");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(_header);
        if (length < 1 || length > Wire.MaxFrameLength)
        {
            if (_header.All(b => b is >= 0x20 and < 0x7f or (byte)'\n' or (byte)'\r' or (byte)'\t'))
            {
                string text = Encoding.ASCII.GetString(_header).ReplaceLineEndings(" ");
                throw new ProtocolException($"text where a message should begin (\"{text}…\"), not the hasync protocol", text);
            }
            throw new ProtocolException($"reading a message's length: {length} is outside 1..{Wire.MaxFrameLength}");
        }
        var type = (FrameType)_header[4];
        if (!Defined<FrameType>.Is(type))
            throw new ProtocolException($"reading a message: unknown type {(byte)type} (is the other side the same hasync version?)");
        int payloadLength = (int)length - 1;
        byte[] payload = type == FrameType.Data ? DataBuffer(payloadLength) : new byte[payloadLength];
        got = input.ReadAtLeast(payload.AsSpan(0, payloadLength), payloadLength, throwOnEndOfStream: false);
        if (got < payloadLength)
            throw new ProtocolException($"reading {Wire.Describe(type)}: connection closed after {got} of its {payloadLength} bytes");
        BytesRead += 5 + payloadLength;
        Volatile.Write(ref _lastHeard, Environment.TickCount64);
        return new Frame(type, payload.AsMemory(0, payloadLength));
    }

    // Data frames (up to 256 KiB each, a stream of them per large file) share one buffer, so receiving a file costs
    // no large-object garbage. A Data frame's payload is therefore valid only until the next Read: the readers of
    // file data consume each chunk before asking for the next frame.
    private byte[] _data = [];

    private byte[] DataBuffer(int length)
    {
        if (_data.Length < length)
            _data = new byte[Math.Max(length, Wire.DataChunk + 64)];
        return _data;
    }
}

/// <summary>Writes frames, each whole: a heartbeat from a timer may come between any two frames of a request, never
/// inside one. The caller still serialises whole requests.</summary>
public sealed class FrameWriter(Stream output)
{
    private readonly byte[] _header = new byte[5];
    private readonly Lock _lock = new();
    private long _lastWritten = Environment.TickCount64;

    /// <summary>Bytes written so far (for the wire statistics).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Writes one frame (buffered until <see cref="Flush"/>).</summary>
    public void Write(FrameType type, PayloadWriter payload)
    {
        var body = payload.WrittenMemory.Span;
        if (body.Length + 1 > Wire.MaxFrameLength)
            throw new ProtocolException($"writing {Wire.Describe(type)}: {body.Length + 1} bytes exceed the maximum {Wire.MaxFrameLength}");
        lock (_lock)
        {
            BinaryPrimitives.WriteUInt32BigEndian(_header, (uint)(body.Length + 1));
            _header[4] = (byte)type;
            output.Write(_header);
            output.Write(body);
            BytesWritten += 5 + body.Length;
        }
    }

    /// <summary>Sends a heartbeat, flushed, when nothing was flushed for <paramref name="quiet"/>; from a timer thread.</summary>
    public void HeartbeatIfQuiet(TimeSpan quiet)
    {
        lock (_lock)
        {
            if (Environment.TickCount64 - _lastWritten < (long)quiet.TotalMilliseconds)
                return;
            Write(FrameType.Heartbeat, new PayloadWriter());
            Flush();
        }
    }

    /// <summary>Writes a Data frame (request id, then the chunk as a byte string) straight from <paramref name="chunk"/>:
    /// the same bytes as a <see cref="PayloadWriter"/> would give, without copying a chunk per frame.</summary>
    public void WriteData(uint id, ReadOnlySpan<byte> chunk)
    {
        int bodyLength = 4 + 4 + chunk.Length;
        if (bodyLength + 1 > Wire.MaxFrameLength)
            throw new ProtocolException($"writing {Wire.Describe(FrameType.Data)}: {bodyLength + 1} bytes exceed the maximum {Wire.MaxFrameLength}");
        Span<byte> head = stackalloc byte[5 + 8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)(bodyLength + 1));
        head[4] = (byte)FrameType.Data;
        BinaryPrimitives.WriteUInt32BigEndian(head[5..], id);
        BinaryPrimitives.WriteUInt32BigEndian(head[9..], (uint)chunk.Length);
        lock (_lock)
        {
            output.Write(head);
            output.Write(chunk);
            BytesWritten += 5 + bodyLength;
        }
    }

    /// <summary>Flushes the underlying stream.</summary>
    public void Flush()
    {
        lock (_lock)
        {
            output.Flush();
            _lastWritten = Environment.TickCount64;
        }
    }
}

/// <summary>Builds a payload: big-endian integers, length-prefixed UTF-8 strings and byte strings.</summary>
public sealed class PayloadWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    internal ReadOnlyMemory<byte> WrittenMemory => _buffer.WrittenMemory;

    /// <summary>Bytes written so far.</summary>
    public int Length => _buffer.WrittenCount;

    /// <summary>Appends a byte.</summary>
    public PayloadWriter U8(byte value) { _buffer.GetSpan(1)[0] = value; _buffer.Advance(1); return this; }
    /// <summary>Appends a big-endian uint16.</summary>
    public PayloadWriter U16(ushort value) { BinaryPrimitives.WriteUInt16BigEndian(_buffer.GetSpan(2), value); _buffer.Advance(2); return this; }
    /// <summary>Appends a big-endian uint32.</summary>
    public PayloadWriter U32(uint value) { BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), value); _buffer.Advance(4); return this; }
    /// <summary>Appends a big-endian int64.</summary>
    public PayloadWriter I64(long value) { BinaryPrimitives.WriteInt64BigEndian(_buffer.GetSpan(8), value); _buffer.Advance(8); return this; }
    /// <summary>Appends a length-prefixed byte string.</summary>
    public PayloadWriter Bytes(ReadOnlySpan<byte> value) { U32((uint)value.Length); _buffer.Write(value); return this; }
    /// <summary>Appends raw bytes (fixed length known to both sides).</summary>
    public PayloadWriter Raw(ReadOnlySpan<byte> value) { _buffer.Write(value); return this; }
    /// <summary>Appends an unsigned LEB128 varint.</summary>
    public PayloadWriter VarU(ulong value)
    {
        var span = _buffer.GetSpan(10);
        int i = 0;
        for (; value >= 0x80; value >>= 7)
            span[i++] = (byte)(value | 0x80);
        span[i++] = (byte)value;
        _buffer.Advance(i);
        return this;
    }
    /// <summary>Appends a signed varint (zigzag).</summary>
    public PayloadWriter VarS(long value) => VarU((ulong)((value << 1) ^ (value >> 63)));
    /// <summary>Appends a varint-length-prefixed byte string.</summary>
    public PayloadWriter VarBytes(ReadOnlySpan<byte> value) { VarU((ulong)value.Length); _buffer.Write(value); return this; }
    /// <summary>Appends a length-prefixed UTF-8 string.</summary>
    public PayloadWriter Text(string value) => Bytes(Encoding.UTF8.GetBytes(value));
}

/// <summary>Reads a payload; every overrun or bad value is a <see cref="ProtocolException"/> naming the frame and field.</summary>
public struct PayloadReader(ReadOnlyMemory<byte> payload, FrameType type)
{
    private int _position;
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private ReadOnlySpan<byte> Take(int count, string field)
    {
        if (count < 0 || count > payload.Length - _position)
            throw new ProtocolException($"reading {Wire.Describe(type)}: field '{field}' needs {count} bytes at offset {_position}, {payload.Length - _position} left");
        var span = payload.Span.Slice(_position, count);
        _position += count;
        return span;
    }

    /// <summary>Reads a byte.</summary>
    public byte U8(string field) => Take(1, field)[0];
    /// <summary>Reads a big-endian uint16.</summary>
    public ushort U16(string field) => BinaryPrimitives.ReadUInt16BigEndian(Take(2, field));
    /// <summary>Reads a big-endian uint32.</summary>
    public uint U32(string field) => BinaryPrimitives.ReadUInt32BigEndian(Take(4, field));
    /// <summary>Reads a big-endian int64.</summary>
    public long I64(string field) => BinaryPrimitives.ReadInt64BigEndian(Take(8, field));
    /// <summary>Reads a length-prefixed byte string.</summary>
    public ReadOnlySpan<byte> Bytes(string field) => Take((int)Math.Min(U32(field), int.MaxValue), field);
    /// <summary>Reads raw bytes of a known length.</summary>
    public ReadOnlySpan<byte> Raw(int count, string field) => Take(count, field);
    /// <summary>Reads an unsigned LEB128 varint (at most 10 bytes).</summary>
    public ulong VarU(string field)
    {
        ulong value = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            byte b = U8(field);
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
                return value;
        }
        throw new ProtocolException($"reading {Wire.Describe(type)}: field '{field}' is a varint longer than 10 bytes");
    }
    /// <summary>Reads a signed (zigzag) varint.</summary>
    public long VarS(string field)
    {
        ulong raw = VarU(field);
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }
    /// <summary>Reads an unsigned varint that must fit an int.</summary>
    public int VarLength(string field)
    {
        ulong value = VarU(field);
        return value <= int.MaxValue ? (int)value : throw new ProtocolException($"reading {Wire.Describe(type)}: field '{field}' = {value} is not a valid length");
    }
    /// <summary>Reads a varint-length-prefixed byte string.</summary>
    public ReadOnlySpan<byte> VarBytes(string field) => Take(VarLength(field), field);

    /// <summary>True when every byte has been read.</summary>
    public readonly bool AtEnd => _position == payload.Length;

    /// <summary>Reads a length-prefixed UTF-8 string.</summary>
    public string Text(string field)
    {
        var bytes = Bytes(field);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ProtocolException($"reading {Wire.Describe(type)}: field '{field}' is not valid UTF-8");
        }
    }

    /// <summary>Fails when bytes are left over (a frame longer than its fields is corrupt).</summary>
    public readonly void End()
    {
        if (_position != payload.Length)
            throw new ProtocolException($"reading {Wire.Describe(type)}: {payload.Length - _position} unexpected bytes after the last field");
    }
}
