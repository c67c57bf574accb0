namespace HaSync.Daemon;

/// <summary>What a target is now, in one word.</summary>
public enum TargetState
{
    /// <summary>Connected; nothing queued, settling, in flight, failing or in conflict.</summary>
    InSync,
    /// <summary>Connected; changes on their way.</summary>
    Pending,
    /// <summary>Connected; paths whose push failed wait for another try.</summary>
    Failing,
    /// <summary>Connected; paths the passive changed on its own wait for an admin.</summary>
    Conflict,
    /// <summary>No session: since when, and when the next try is.</summary>
    Reconnecting,
    /// <summary>The passive has accepted a later active's epoch: another node has become active.</summary>
    Refused,
    /// <summary>This node is not the active one: it pushes nothing, and claims nothing about the passive.</summary>
    StandingBy,
    /// <summary>The daemon is not running (stopped, killed, hung): nothing is known about the target.</summary>
    Stopped,
}

/// <summary>
/// A target's state, the words an admin reads for it, and how bad it is for a monitoring plugin (0 OK, 1 WARNING,
/// 2 CRITICAL), derived from one status snapshot in one place: <c>status</c>, <c>status --json</c> and <c>check</c> all
/// say what this says. OK means a failover now would find the passive identical as far as the daemon knows.
/// </summary>
public sealed record TargetHealth(string Name, TargetState State, string Summary, int Level)
{
    /// <summary>Seconds of lag (and of being down, or failing) from which a target is WARNING and CRITICAL.</summary>
    public readonly record struct Thresholds(double Warn, double Crit)
    {
        /// <summary>check's defaults.</summary>
        public static Thresholds Default => new(30, 120);
    }

    /// <summary>The state's name as printed and in JSON.</summary>
    public string StateName => State switch
    {
        TargetState.InSync => "in sync",
        TargetState.StandingBy => "standing by",
        _ => State.ToString().ToLowerInvariant(),
    };

    /// <summary>The health of a target at a moment.</summary>
    /// <param name="snapshot">The daemon's status file.</param>
    /// <param name="running">Whether the daemon that wrote it is alive (<see cref="StatusFile.IsRunning"/>).</param>
    /// <param name="target">One of its targets.</param>
    /// <param name="now">The moment.</param>
    /// <param name="thresholds">From which lag, outage or failure it is WARNING and CRITICAL.</param>
    public static TargetHealth Of(DaemonSnapshot snapshot, bool running, TargetStatus target, DateTimeOffset now, Thresholds thresholds)
    {
        string name = target.Name;
        if (!running)
            return new(name, TargetState.Stopped, "unknown: the daemon is not running, nothing is being pushed", 2);
        if (snapshot.Role.State == "passive")
            return new(name, TargetState.StandingBy, "standing by: this node is not the active one", 0);
        if (target.Fenced)
            return new(name, TargetState.Refused, $"refuses this node's epoch since {target.Since:u}: another node has become active ({target.LastError})", 2);
        if (!target.Connected)
        {
            double down = Math.Max(0, (now - target.Since).TotalSeconds);
            string next = target.NextConnect is not { } at ? "" : at > now ? $", next try in {Ago(at - now)}" : ", trying now";
            return new(name, TargetState.Reconnecting, $"disconnected since {target.Since:u} ({Ago(now - target.Since)}){next}: {target.LastError ?? "connecting"}",
                down >= thresholds.Crit ? 2 : 1);
        }
        double lag = StatusFile.Lag(target, snapshot.Updated).TotalSeconds;
        int lagLevel = lag >= thresholds.Crit ? 2 : lag >= thresholds.Warn ? 1 : 0;
        if (target.Conflicts is [var conflict, ..])
            return new(name, TargetState.Conflict, $"{target.Conflicts.Count} conflict(s), first {conflict.Path} since {conflict.Since:u}: {conflict.Message} " +
                $"(hasync resolve {conflict.Path} --take active|passive)", 2);
        if (target.Failing.Count > 0)
        {
            var first = target.Failing.MinBy(f => f.Since)!;
            double failingFor = (now - first.Since).TotalSeconds;
            return new(name, TargetState.Failing, $"{target.Failing.Count} path(s) failing, first {first.Path} since {first.Since:u} " +
                $"({first.Attempts} {(first.Attempts == 1 ? "try" : "tries")}, next {(first.NextTry > now ? $"in {Ago(first.NextTry - now)}" : "now")}): {first.Error}",
                Math.Max(failingFor >= thresholds.Crit ? 2 : 1, lagLevel));
        }
        int moving = target.Queue + snapshot.Aggregating;
        if (moving > 0 || lag > 0)
            return new(name, TargetState.Pending, $"not yet in sync: {moving} change(s) on their way, lag {lag:F1} s", Math.Max(1, lagLevel)); // OK means nothing is on its way
        return new(name, TargetState.InSync, $"in sync, connected since {target.Since:u}", 0);
    }

    /// <summary>A span as an admin reads it: seconds, minutes or hours.</summary>
    public static string Ago(TimeSpan span) =>
        span.TotalSeconds < 120 ? $"{Math.Max(0, span.TotalSeconds):F0} s" : span.TotalMinutes < 120 ? $"{span.TotalMinutes:F0} min" : $"{span.TotalHours:F0} h";
}
