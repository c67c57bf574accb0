using System.Buffers;
using System.Text.Json;

namespace HaSync.Guard;

/// <summary>
/// The guard's files as JSON (an admin can read them), written and read with the low-level Utf8Json writer and
/// reader: JsonSerializer's first use costs a process tens of milliseconds, and every resync and agent session
/// reads these files at start. Not escaped for HTML: the files are read by admins and by hasync only.
/// </summary>
internal static class GuardJson
{
    public static byte[] Write(Epoch epoch) => Build(json =>
    {
        json.WriteStartObject();
        json.WriteNumber("number", epoch.Number);
        json.WriteString("node", epoch.Node);
        json.WriteString("host", epoch.Host);
        json.WriteString("at", epoch.At);
        json.WriteEndObject();
    });

    /// <exception cref="JsonException">Not an epoch.</exception>
    public static Epoch ReadEpoch(ReadOnlySpan<byte> text)
    {
        long? number = null;
        string? node = null, host = null;
        DateTimeOffset? at = null;
        var reader = Open(text);
        while (NextField(ref reader))
        {
            if (reader.ValueTextEquals("number"u8))
                number = NextNumber(ref reader);
            else if (reader.ValueTextEquals("node"u8))
                node = NextString(ref reader);
            else if (reader.ValueTextEquals("host"u8))
                host = NextString(ref reader);
            else if (reader.ValueTextEquals("at"u8))
                at = reader.Read() && reader.TokenType == JsonTokenType.String && reader.TryGetDateTimeOffset(out var time) ? time : throw new JsonException("at is not a time");
            else
                SkipValue(ref reader);
        }
        return number is > 0 && node is { Length: > 0 } && host is not null && at is not null
            ? new Epoch(number.Value, node, host, at.Value)
            : throw new JsonException("an epoch needs number, node, host and at");
    }

    // A journal line's field names, encoded once (each string name was transcoded and checked for escapes on every line).
    private static readonly JsonEncodedText OpName = JsonEncodedText.Encode("op"), PathName = JsonEncodedText.Encode("path"),
        FingerprintName = JsonEncodedText.Encode("fingerprint"), InoName = JsonEncodedText.Encode("ino"), SizeName = JsonEncodedText.Encode("size"),
        MtimeName = JsonEncodedText.Encode("mtime"), MtimeNsName = JsonEncodedText.Encode("mtime_ns"), CtimeName = JsonEncodedText.Encode("ctime"),
        CtimeNsName = JsonEncodedText.Encode("ctime_ns");

    /// <summary>Journal lines, one JSON object per line, through one writer (a burst writes thousands).</summary>
    public static byte[] Write(IReadOnlyCollection<JournalLine> lines)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(4096, lines.Count * 224)); // about a line each: grown seldom
        using var json = new Utf8JsonWriter(buffer, Options);
        foreach (var line in lines)
        {
            json.WriteStartObject();
            json.WriteString(OpName, line.Op);
            json.WriteString(PathName, line.Path);
            if (line.Fingerprint is not null)
                json.WriteString(FingerprintName, line.Fingerprint);
            if (line.Ino != 0)
            {
                json.WriteNumber(InoName, line.Ino);
                json.WriteNumber(SizeName, line.Size);
                json.WriteNumber(MtimeName, line.Mtime);
                json.WriteNumber(MtimeNsName, line.MtimeNs);
                json.WriteNumber(CtimeName, line.Ctime);
                json.WriteNumber(CtimeNsName, line.CtimeNs);
            }
            json.WriteEndObject();
            json.Flush();
            buffer.Write("\n"u8);
            json.Reset(); // the next line is a new document
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="JsonException">Not a journal line (a torn one, after a crash).</exception>
    /// <remarks>Field names are matched as bytes, not read as strings: an agent reads the whole journal at the start of
    /// each session, one line per path of the watched set.</remarks>
    public static JournalLine ReadJournalLine(ReadOnlySpan<byte> text)
    {
        string? op = null, path = null, fingerprint = null;
        long ino = 0, size = 0, mtime = 0, mtimeNs = 0, ctime = 0, ctimeNs = 0;
        var reader = Open(text);
        while (NextField(ref reader))
        {
            if (reader.ValueTextEquals("op"u8))
                op = NextString(ref reader) switch { "wrote" => "wrote", "intent" => "intent", "removed" => "removed", var other => other };
            else if (reader.ValueTextEquals("path"u8))
                path = NextString(ref reader);
            else if (reader.ValueTextEquals("fingerprint"u8))
                fingerprint = NextString(ref reader);
            else if (reader.ValueTextEquals("ino"u8))
                ino = NextNumber(ref reader);
            else if (reader.ValueTextEquals("size"u8))
                size = NextNumber(ref reader);
            else if (reader.ValueTextEquals("mtime"u8))
                mtime = NextNumber(ref reader);
            else if (reader.ValueTextEquals("mtime_ns"u8))
                mtimeNs = NextNumber(ref reader);
            else if (reader.ValueTextEquals("ctime"u8))
                ctime = NextNumber(ref reader);
            else if (reader.ValueTextEquals("ctime_ns"u8))
                ctimeNs = NextNumber(ref reader);
            else
                SkipValue(ref reader);
        }
        return op is not null && path is not null
            ? new JournalLine { Op = op, Path = path, Fingerprint = fingerprint, Ino = ino, Size = size, Mtime = mtime, MtimeNs = mtimeNs, Ctime = ctime, CtimeNs = ctimeNs }
            : throw new JsonException("a journal line needs op and path");
    }

    // A value of the wrong type is a damaged line, like a torn one (JsonException), not a crash of the reader.
    private static string? NextString(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType is JsonTokenType.String or JsonTokenType.Null ? reader.GetString() : throw new JsonException("expected a string");

    private static long NextNumber(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out long value) ? value : throw new JsonException("expected an integer");

    private static Utf8JsonReader Open(ReadOnlySpan<byte> text)
    {
        var reader = new Utf8JsonReader(text);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException("expected an object");
        return reader;
    }

    /// <summary>Moves to the next field's name; false at the object's end (and throws if the object is not closed).</summary>
    private static bool NextField(ref Utf8JsonReader reader)
    {
        if (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            return true;
        return reader.TokenType == JsonTokenType.EndObject ? false : throw new JsonException("the object is not closed");
    }

    /// <summary>Skips the value of a field this version does not know.</summary>
    private static void SkipValue(ref Utf8JsonReader reader)
    {
        if (!reader.Read())
            throw new JsonException("a field without a value");
        reader.Skip();
    }

    private static readonly JsonWriterOptions Options = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static byte[] Build(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer, Options))
            write(json);
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }
}
