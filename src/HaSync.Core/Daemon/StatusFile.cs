using System.Text.Json;
using HaSync.Apply;

namespace HaSync.Daemon;

/// <summary>What the daemon reports about itself: written to the state directory every second, read by
/// <c>hasync status</c> and <c>hasync check</c>.</summary>
public sealed record DaemonSnapshot
{
    /// <summary>The daemon's process id.</summary>
    public int Pid { get; init; }
    /// <summary>The configuration file it runs.</summary>
    public string Config { get; init; } = "";
    /// <summary>When it started.</summary>
    public DateTimeOffset Started { get; init; }
    /// <summary>When this snapshot was taken (a stale one means a daemon that died).</summary>
    public DateTimeOffset Updated { get; init; }
    /// <summary>True in the last snapshot of a daemon that stopped cleanly.</summary>
    public bool Stopped { get; init; }
    /// <summary>Directories watched.</summary>
    public int Watches { get; init; }
    /// <summary>What cannot be watched, and why.</summary>
    public IReadOnlyList<string> WatchProblems { get; init; } = [];
    /// <summary>Listed paths that do not exist on this node (a typo, or not installed yet): watched for, and warned about.</summary>
    public IReadOnlyList<string> MissingPaths { get; init; } = [];
    /// <summary>Paths changed but not yet quiet (waiting in the aggregator).</summary>
    public int Aggregating { get; init; }
    /// <summary>Whether this node is the active one (only the active pushes).</summary>
    public RoleStatus Role { get; init; } = new() { Check = "", State = "unknown" };
    /// <summary>Each target's health.</summary>
    public IReadOnlyList<TargetStatus> Targets { get; init; } = [];
}

/// <summary>Reads and writes <see cref="DaemonSnapshot"/> as JSON (snake_case), replaced atomically.</summary>
public static class StatusFile
{
    /// <summary>Writes the snapshot: temp file and rename, so readers never see half of it.</summary>
    public static void Write(string path, DaemonSnapshot snapshot)
    {
        Guard.StateDirectory.Ensure(Path.GetDirectoryName(path)!);
        using var file = AtomicFile.Create(path);
        using (var json = new Utf8JsonWriter(file.Stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("pid", snapshot.Pid);
            json.WriteString("config", snapshot.Config);
            json.WriteString("started", snapshot.Started);
            json.WriteString("updated", snapshot.Updated);
            json.WriteBoolean("stopped", snapshot.Stopped);
            json.WriteNumber("watches", snapshot.Watches);
            json.WriteStartArray("watch_problems");
            foreach (string problem in snapshot.WatchProblems)
                json.WriteStringValue(problem);
            json.WriteEndArray();
            json.WriteStartArray("missing_paths");
            foreach (string missing in snapshot.MissingPaths)
                json.WriteStringValue(missing);
            json.WriteEndArray();
            json.WriteNumber("aggregating", snapshot.Aggregating);
            json.WriteStartObject("role");
            json.WriteString("check", snapshot.Role.Check);
            json.WriteBoolean("configured", snapshot.Role.Configured);
            json.WriteString("state", snapshot.Role.State);
            json.WriteString("detail", snapshot.Role.Detail);
            if (snapshot.Role.Epoch is long epoch)
                json.WriteNumber("epoch", epoch);
            else
                json.WriteNull("epoch");
            json.WriteString("since", snapshot.Role.Since);
            json.WriteEndObject();
            json.WriteStartArray("targets");
            foreach (var t in snapshot.Targets)
            {
                json.WriteStartObject();
                json.WriteString("name", t.Name);
                json.WriteBoolean("connected", t.Connected);
                json.WriteString("since", t.Since);
                WriteTime(json, "last_success", t.LastSuccess);
                json.WriteNumber("queue", t.Queue);
                WriteTime(json, "oldest_pending", t.OldestPending);
                json.WriteNumber("lag_seconds", Math.Round(Lag(t, snapshot.Updated).TotalSeconds, 3));
                json.WriteNumber("pushed", t.Pushed);
                json.WriteNumber("resyncs", t.Resyncs);
                if (t.LastError is null)
                    json.WriteNull("last_error");
                else
                    json.WriteString("last_error", t.LastError);
                WriteTime(json, "last_error_at", t.LastErrorAt);
                WriteTime(json, "next_connect", t.NextConnect);
                if (t.AgentPid is int pid)
                    json.WriteNumber("agent_pid", pid);
                else
                    json.WriteNull("agent_pid");
                json.WriteBoolean("fenced", t.Fenced);
                json.WriteStartArray("conflicts");
                foreach (var c in t.Conflicts)
                {
                    json.WriteStartObject();
                    json.WriteString("path", c.Path);
                    json.WriteString("message", c.Message);
                    json.WriteString("since", c.Since);
                    json.WriteEndObject();
                }
                json.WriteEndArray();
                json.WriteStartArray("failing");
                foreach (var f in t.Failing)
                {
                    json.WriteStartObject();
                    json.WriteString("path", f.Path);
                    json.WriteString("error", f.Error);
                    json.WriteNumber("attempts", f.Attempts);
                    json.WriteString("since", f.Since);
                    json.WriteString("next_try", f.NextTry);
                    json.WriteEndObject();
                }
                json.WriteEndArray();
                json.WriteNumber("drift_repaired", t.DriftRepaired);
                WriteTime(json, "last_self_check", t.LastSelfCheck);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        file.Commit(durable: false); // a status that a power cut loses is rewritten a second after start
    }

    /// <summary>How far the passive is behind at <paramref name="now"/>: the age of the oldest change not yet on it.</summary>
    public static TimeSpan Lag(TargetStatus target, DateTimeOffset now) =>
        target.OldestPending is { } oldest && now > oldest ? now - oldest : TimeSpan.Zero;

    /// <summary>A snapshot older than this was left by a daemon that is gone.</summary>
    public static readonly TimeSpan Stale = TimeSpan.FromSeconds(15);

    /// <summary>True when the snapshot comes from a daemon alive now; otherwise <paramref name="why"/> says what is wrong.</summary>
    public static bool IsRunning(DaemonSnapshot snapshot, DateTimeOffset now, out string why)
    {
        why = snapshot.Stopped ? $"stopped at {snapshot.Updated:u}"
            : !Directory.Exists($"/proc/{snapshot.Pid}") ? $"not running: pid {snapshot.Pid} is gone (last status {snapshot.Updated:u}; killed or crashed?)"
            : now - snapshot.Updated > Stale ? $"not answering: its status is {(now - snapshot.Updated).TotalSeconds:F0} s old (pid {snapshot.Pid})"
            : "";
        return why.Length == 0;
    }

    /// <summary>Reads a snapshot; a missing or unreadable file is an <see cref="IOException"/> naming it.</summary>
    public static DaemonSnapshot Read(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            return new DaemonSnapshot
            {
                Pid = root.GetProperty("pid").GetInt32(),
                Config = root.GetProperty("config").GetString() ?? "",
                Started = root.GetProperty("started").GetDateTimeOffset(),
                Updated = root.GetProperty("updated").GetDateTimeOffset(),
                Stopped = root.GetProperty("stopped").GetBoolean(),
                Watches = root.GetProperty("watches").GetInt32(),
                WatchProblems = root.GetProperty("watch_problems").EnumerateArray().Select(p => p.GetString() ?? "").ToList(),
                MissingPaths = root.TryGetProperty("missing_paths", out var missing) ? missing.EnumerateArray().Select(p => p.GetString() ?? "").ToList() : [],
                Aggregating = root.GetProperty("aggregating").GetInt32(),
                Role = ReadRole(root.GetProperty("role")),
                Targets = root.GetProperty("targets").EnumerateArray().Select(t => new TargetStatus
                {
                    Name = t.GetProperty("name").GetString() ?? "",
                    Connected = t.GetProperty("connected").GetBoolean(),
                    Since = t.GetProperty("since").GetDateTimeOffset(),
                    LastSuccess = ReadTime(t, "last_success"),
                    Queue = t.GetProperty("queue").GetInt32(),
                    OldestPending = ReadTime(t, "oldest_pending"),
                    Pushed = t.GetProperty("pushed").GetInt64(),
                    Resyncs = t.GetProperty("resyncs").GetInt32(),
                    LastError = t.GetProperty("last_error").GetString(),
                    LastErrorAt = ReadTime(t, "last_error_at"),
                    NextConnect = ReadTime(t, "next_connect"),
                    AgentPid = t.GetProperty("agent_pid").ValueKind == JsonValueKind.Number ? t.GetProperty("agent_pid").GetInt32() : null,
                    Fenced = t.GetProperty("fenced").GetBoolean(),
                    Conflicts = t.GetProperty("conflicts").EnumerateArray().Select(c => new ConflictStatus(
                        c.GetProperty("path").GetString() ?? "", c.GetProperty("message").GetString() ?? "", c.GetProperty("since").GetDateTimeOffset())).ToList(),
                    Failing = t.GetProperty("failing").EnumerateArray().Select(f => new FailingStatus(
                        f.GetProperty("path").GetString() ?? "", f.GetProperty("error").GetString() ?? "", f.GetProperty("attempts").GetInt32(),
                        f.GetProperty("since").GetDateTimeOffset(), f.GetProperty("next_try").GetDateTimeOffset())).ToList(),
                    DriftRepaired = t.GetProperty("drift_repaired").GetInt64(),
                    LastSelfCheck = ReadTime(t, "last_self_check"),
                }).ToList(),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new IOException($"{path}: not a hasync status file: {e.Message}", e);
        }
    }

    private static RoleStatus ReadRole(JsonElement r) => new()
    {
        Check = r.GetProperty("check").GetString() ?? "",
        Configured = r.GetProperty("configured").GetBoolean(),
        State = r.GetProperty("state").GetString() ?? "",
        Detail = r.GetProperty("detail").GetString() ?? "",
        Epoch = r.GetProperty("epoch").ValueKind == JsonValueKind.Number ? r.GetProperty("epoch").GetInt64() : null,
        Since = r.GetProperty("since").GetDateTimeOffset(),
    };

    private static void WriteTime(Utf8JsonWriter json, string name, DateTimeOffset? time)
    {
        if (time is { } t)
            json.WriteString(name, t);
        else
            json.WriteNull(name);
    }

    // Absent (a status written by an older daemon, read after an upgrade) or null: not known.
    private static DateTimeOffset? ReadTime(JsonElement element, string name) =>
        element.TryGetProperty(name, out var time) && time.ValueKind != JsonValueKind.Null ? time.GetDateTimeOffset() : null;
}
