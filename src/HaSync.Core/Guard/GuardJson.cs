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
        Fields(text, (name, reader) =>
        {
            switch (name)
            {
                case "number": number = reader.GetInt64(); break;
                case "node": node = reader.GetString(); break;
                case "host": host = reader.GetString(); break;
                case "at": at = reader.GetDateTimeOffset(); break;
            }
        });
        return number is > 0 && node is { Length: > 0 } && host is not null && at is not null
            ? new Epoch(number.Value, node, host, at.Value)
            : throw new JsonException("an epoch needs number, node, host and at");
    }

    /// <summary>Journal lines, one JSON object per line, through one writer (a burst writes thousands).</summary>
    public static byte[] Write(IEnumerable<JournalLine> lines)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using var json = new Utf8JsonWriter(buffer, Options);
        foreach (var line in lines)
        {
            json.WriteStartObject();
            json.WriteString("op", line.Op);
            json.WriteString("path", line.Path);
            if (line.Fingerprint is not null)
                json.WriteString("fingerprint", line.Fingerprint);
            if (line.Ino != 0)
            {
                json.WriteNumber("ino", line.Ino);
                json.WriteNumber("size", line.Size);
                json.WriteNumber("mtime", line.Mtime);
                json.WriteNumber("mtime_ns", line.MtimeNs);
                json.WriteNumber("ctime", line.Ctime);
                json.WriteNumber("ctime_ns", line.CtimeNs);
            }
            json.WriteEndObject();
            json.Flush();
            buffer.Write("\n"u8);
            json.Reset(); // the next line is a new document
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="JsonException">Not a journal line (a torn one, after a crash).</exception>
    public static JournalLine ReadJournalLine(ReadOnlySpan<byte> text)
    {
        string? op = null, path = null, fingerprint = null;
        long ino = 0, size = 0, mtime = 0, mtimeNs = 0, ctime = 0, ctimeNs = 0;
        Fields(text, (name, reader) =>
        {
            switch (name)
            {
                case "op": op = reader.GetString(); break;
                case "path": path = reader.GetString(); break;
                case "fingerprint": fingerprint = reader.GetString(); break;
                case "ino": ino = reader.GetInt64(); break;
                case "size": size = reader.GetInt64(); break;
                case "mtime": mtime = reader.GetInt64(); break;
                case "mtime_ns": mtimeNs = reader.GetInt64(); break;
                case "ctime": ctime = reader.GetInt64(); break;
                case "ctime_ns": ctimeNs = reader.GetInt64(); break;
            }
        });
        return op is not null && path is not null
            ? new JournalLine { Op = op, Path = path, Fingerprint = fingerprint, Ino = ino, Size = size, Mtime = mtime, MtimeNs = mtimeNs, Ctime = ctime, CtimeNs = ctimeNs }
            : throw new JsonException("a journal line needs op and path");
    }

    private delegate void FieldReader(string name, Utf8JsonReader reader);

    /// <summary>Calls <paramref name="read"/> with each top-level scalar field of one JSON object.</summary>
    private static void Fields(ReadOnlySpan<byte> text, FieldReader read)
    {
        var reader = new Utf8JsonReader(text);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException("expected an object");
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string name = reader.GetString()!;
            if (!reader.Read())
                break;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                reader.Skip();
            else
                read(name, reader);
        }
        if (reader.TokenType != JsonTokenType.EndObject)
            throw new JsonException("the object is not closed");
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
