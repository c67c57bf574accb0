using System.Buffers.Binary;

namespace HaSync.Delta;

/// <summary>
/// librsync's delta command table (prototab.c): 0x00 END; 0x01..0x40 a literal of 1..64 bytes inline;
/// 0x41..0x44 LITERAL_N1..N8 with a 1/2/4/8-byte length; 0x45..0x54 COPY with 1/2/4/8-byte position and
/// length (position width major); 0x55..0xff reserved. All integers are big-endian.
/// </summary>
internal static class DeltaOpcodes
{
    public const byte End = 0x00;
    public const byte LiteralInlineMax = 0x40;
    public const byte LiteralN1 = 0x41;
    public const byte CopyN1N1 = 0x45;
    public const byte LastCopy = 0x54;

    /// <summary>Bytes needed to hold <paramref name="value"/>: 1, 2, 4 or 8 (librsync's rs_int_len).</summary>
    public static int IntLength(long value) => value switch
    {
        <= 0xff => 1,
        <= 0xffff => 2,
        <= 0xffffffffL => 4,
        _ => 8,
    };

    /// <summary>Index 0..3 of a width 1, 2, 4 or 8.</summary>
    public static int WidthIndex(int width) => width switch { 1 => 0, 2 => 1, 4 => 2, _ => 3 };

    /// <summary>Width 1, 2, 4 or 8 of an index 0..3.</summary>
    public static int Width(int index) => 1 << index;

    public static void WriteInt(Span<byte> destination, long value, int width)
    {
        switch (width)
        {
            case 1: destination[0] = (byte)value; break;
            case 2: BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)value); break;
            case 4: BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)value); break;
            default: BinaryPrimitives.WriteInt64BigEndian(destination, value); break;
        }
    }

    public static long ReadInt(ReadOnlySpan<byte> source, int width) => width switch
    {
        1 => source[0],
        2 => BinaryPrimitives.ReadUInt16BigEndian(source),
        4 => BinaryPrimitives.ReadUInt32BigEndian(source),
        _ => BinaryPrimitives.ReadInt64BigEndian(source),
    };
}

/// <summary>What a delta holds: how much of the new file is copied from the basis and how much is sent as literal data.</summary>
public sealed record DeltaStats
{
    /// <summary>Bytes of literal (new) data carried in the delta.</summary>
    public long LiteralBytes { get; internal set; }
    /// <summary>Bytes copied from the basis.</summary>
    public long CopiedBytes { get; internal set; }
    /// <summary>Number of literal commands.</summary>
    public long LiteralCommands { get; internal set; }
    /// <summary>Number of copy commands.</summary>
    public long CopyCommands { get; internal set; }
    /// <summary>Length of the delta itself, header and END included.</summary>
    public long DeltaLength { get; internal set; }
    /// <summary>Length of the new file the delta describes.</summary>
    public long NewLength => LiteralBytes + CopiedBytes;
}

/// <summary>Writes delta commands with the encoding librsync chooses (emit.c), so equal decisions give equal bytes.</summary>
internal sealed class DeltaWriter
{
    private readonly Stream _output;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _used;

    public DeltaWriter(Stream output)
    {
        _output = output;
        Span<byte> magic = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(magic, SignatureFormat.DeltaMagic);
        Put(magic);
    }

    public DeltaStats Stats { get; } = new();

    public void Literal(ReadOnlySpan<byte> data)
    {
        int width = data.Length <= DeltaOpcodes.LiteralInlineMax ? 0 : DeltaOpcodes.IntLength(data.Length);
        Span<byte> command = stackalloc byte[9];
        command[0] = width == 0 ? (byte)data.Length : (byte)(DeltaOpcodes.LiteralN1 + DeltaOpcodes.WidthIndex(width));
        DeltaOpcodes.WriteInt(command[1..], data.Length, width == 0 ? 1 : width);
        Put(command[..(1 + width)]);
        Put(data);
        Stats.LiteralBytes += data.Length;
        Stats.LiteralCommands++;
    }

    public void Copy(long position, long length)
    {
        int positionWidth = DeltaOpcodes.IntLength(position), lengthWidth = DeltaOpcodes.IntLength(length);
        Span<byte> command = stackalloc byte[17];
        command[0] = (byte)(DeltaOpcodes.CopyN1N1 + 4 * DeltaOpcodes.WidthIndex(positionWidth) + DeltaOpcodes.WidthIndex(lengthWidth));
        DeltaOpcodes.WriteInt(command[1..], position, positionWidth);
        DeltaOpcodes.WriteInt(command[(1 + positionWidth)..], length, lengthWidth);
        Put(command[..(1 + positionWidth + lengthWidth)]);
        Stats.CopiedBytes += length;
        Stats.CopyCommands++;
    }

    public void End()
    {
        Put([DeltaOpcodes.End]);
        _output.Write(_buffer, 0, _used);
        _used = 0;
        _output.Flush();
    }

    private void Put(ReadOnlySpan<byte> data)
    {
        Stats.DeltaLength += data.Length;
        if (_used + data.Length > _buffer.Length)
        {
            _output.Write(_buffer, 0, _used);
            _used = 0;
            if (data.Length > _buffer.Length)
            {
                _output.Write(data);
                return;
            }
        }
        data.CopyTo(_buffer.AsSpan(_used));
        _used += data.Length;
    }
}
