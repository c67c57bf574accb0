using System.CommandLine;
using HaSync.Configuration;
using HaSync.Daemon;

namespace HaSync.Cli.Commands;

/// <summary>
/// <c>hasync status</c> and <c>hasync check</c>: what the daemon's status file says, for an admin (text or JSON)
/// and for Nagios/Icinga (one line, perfdata, exit 0/1/2/3).
/// </summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var config = ResyncCommand.ConfigOption();
        var json = new Option<bool>("--json") { Description = "The status file itself (JSON)" };
        var command = new Command("status", "Show the daemon's state: per target connected or not, last success, queue, lag, last error") { config, json };
        command.SetAction(r =>
        {
            if (Load(r.GetValue(config)!, out string error) is not var (snapshot, path))
            {
                Console.Error.WriteLine($"hasync status: {error}");
                return 3;
            }
            if (r.GetValue(json))
            {
                Console.Write(File.ReadAllText(path));
                Console.WriteLine();
                return StatusFile.IsRunning(snapshot, DateTimeOffset.UtcNow, out _) ? 0 : 3;
            }
            return PrintStatus(snapshot);
        });
        return command;
    }

    public static Command CreateCheck()
    {
        var config = ResyncCommand.ConfigOption();
        var warn = new Option<double>("--warn") { Description = "Lag (seconds) from which a target is WARNING", DefaultValueFactory = _ => 30 };
        var crit = new Option<double>("--crit") { Description = "Lag (seconds) from which a target is CRITICAL", DefaultValueFactory = _ => 120 };
        var command = new Command("check", "Nagios/Icinga plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one status line with perfdata") { config, warn, crit };
        command.SetAction(r =>
        {
            var (code, line) = Check(r.GetValue(config)!, r.GetValue(warn), r.GetValue(crit), DateTimeOffset.UtcNow);
            Console.WriteLine(line);
            return code;
        });
        return command;
    }

    /// <summary>The configuration's status file, read; or null and what went wrong (for either verb's own wording).</summary>
    private static (DaemonSnapshot Snapshot, string Path)? Load(string configPath, out string error)
    {
        error = "";
        string? statusFile = null;
        try
        {
            statusFile = ConfigLoader.Load(configPath).StatusFile;
            return (StatusFile.Read(statusFile), statusFile);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException && statusFile is not null)
        {
            // No state directory yet counts too: a daemon that never ran here.
            error = $"no daemon status at {statusFile}: is hasync daemon running with this configuration?";
        }
        catch (Exception e) when (e is HaSyncException or IOException or UnauthorizedAccessException)
        {
            error = e.Message;
        }
        return null;
    }

    private static int PrintStatus(DaemonSnapshot s)
    {
        var now = DateTimeOffset.UtcNow;
        bool running = StatusFile.IsRunning(s, now, out string why);
        Console.WriteLine(running
            ? $"daemon: running (pid {s.Pid}, since {s.Started:u}, {s.Config}); {s.Watches} directories watched, {s.Aggregating} changes settling"
            : $"daemon: {why}");
        foreach (string problem in s.WatchProblems)
            Console.WriteLine($"  not watched: {problem}");
        string epoch = s.Role.Epoch is long number ? $", epoch {number}" : "";
        Console.WriteLine($"role: {s.Role.State} since {s.Role.Since:u}{epoch} ({s.Role.Detail})");
        if (!s.Role.Configured)
            Console.WriteLine("  warning: no role check is configured; set 'role:' (vip, command or always) so that a passive node never pushes");
        else if (s.Role.State != "active")
            Console.WriteLine("  not pushing: only the active node pushes");
        foreach (var t in s.Targets)
        {
            var lag = StatusFile.Lag(t, s.Updated);
            string state = t.Connected ? $"connected since {t.Since:u}"
                : s.Role.State == "passive" ? "standing by (this node is not the active one)"
                : t.Fenced ? $"REFUSED since {t.Since:u}: it has accepted a later active's epoch"
                : $"DISCONNECTED since {t.Since:u}";
            string sync = t.Queue == 0 && lag == TimeSpan.Zero && t.Failing.Count == 0 && t.Conflicts.Count == 0 && s.Aggregating == 0 ? "in sync"
                : $"{t.Queue} queued, lag {lag.TotalSeconds:F1} s";
            string last = t.LastSuccess is { } ok ? $"last success {Ago(now - ok)} ago" : "no success yet";
            Console.WriteLine($"{t.Name}: {state}; {sync}; {last}; {t.Pushed} pushed, {t.Resyncs} resyncs");
            if (t.LastError is { } error)
                Console.WriteLine($"  last error ({Ago(now - (t.LastErrorAt ?? now))} ago): {error}");
            foreach (var c in t.Conflicts)
                Console.WriteLine($"  CONFLICT {c.Path} (since {c.Since:u}): {c.Message}");
            foreach (var f in t.Failing)
                Console.WriteLine($"  FAILING {f.Path} ({f.Attempts} {(f.Attempts == 1 ? "try" : "tries")} since {f.Since:u}, next {(f.NextTry > now ? $"in {Ago(f.NextTry - now)}" : "now")}): {f.Error}");
            if (t.DriftRepaired > 0)
                Console.WriteLine($"  self-check: {t.DriftRepaired} path(s) found differing from what the daemon believed, and repaired (see the log; please report it)");
        }
        return running ? 0 : 3;
    }

    /// <summary>The plugin's verdict and line. OK only when the daemon has no reason to believe a passive differs: nothing
    /// queued, in flight or failing. Lag decides how bad it is (the age of the oldest change not yet on a passive);
    /// a dead daemon, a target down for longer than <paramref name="crit"/>, a conflict, or a role check that
    /// cannot run is CRITICAL. A passive node standing by is OK; no role check configured is a WARNING.</summary>
    internal static (int Code, string Line) Check(string configPath, double warn, double crit, DateTimeOffset now)
    {
        if (Load(configPath, out string error) is not var (s, _))
            return (3, $"HASYNC UNKNOWN - {error}");
        if (!StatusFile.IsRunning(s, now, out string why))
            return (2, $"HASYNC CRITICAL - daemon {why}");

        int code = 0;
        var problems = new List<string>();
        var perfdata = new List<string>();
        void Raise(int level, string problem)
        {
            code = Math.Max(code, level);
            problems.Add(problem);
        }
        if (s.Role.State == "passive")
            return (0, $"HASYNC OK - passive node, standing by ({s.Role.Detail})");
        if (s.Role.State != "active")
            Raise(2, $"not pushing: role {s.Role.State} ({s.Role.Detail})");
        else if (!s.Role.Configured)
            Raise(1, "no role check configured (set 'role:' so that a passive node never pushes)");
        foreach (var t in s.Targets)
        {
            string label = t.Name.Replace('\'', '_').Replace('=', '_');
            if (t.Fenced)
                Raise(2, $"{t.Name} refuses this node's epoch: another node has become active ({t.LastError})");
            foreach (var c in t.Conflicts)
                Raise(2, $"{t.Name} conflict: {c.Path} changed on the passive (hasync resolve {c.Path} --take active|passive)");
            double lag = StatusFile.Lag(t, s.Updated).TotalSeconds;
            double down = (now - t.Since).TotalSeconds;
            if (!t.Connected && !t.Fenced)
                Raise(down >= crit ? 2 : 1, $"{t.Name} disconnected for {down:F0} s ({t.LastError ?? "connecting"})");
            if (lag >= crit)
                Raise(2, $"{t.Name} lag {lag:F0} s");
            else if (lag >= warn)
                Raise(1, $"{t.Name} lag {lag:F0} s");
            else if (t.Connected && Math.Max(0, t.Queue - t.Failing.Count) + s.Aggregating is var moving and > 0)
                Raise(1, $"{t.Name} not yet in sync: {moving} change(s) queued or being pushed, lag {lag:F1} s"); // OK means nothing is on its way
            if (t.Failing.Count > 0)
                Raise(1, $"{t.Name} {t.Failing.Count} path(s) failing, first {t.Failing[0].Path}: {t.Failing[0].Error}");
            // Perfdata is parsed by machines: always a dot for decimals, whatever the locale.
            perfdata.Add(FormattableString.Invariant($"'{label}_lag'={lag:F3}s;{warn};{crit};0"));
            perfdata.Add(FormattableString.Invariant($"'{label}_queue'={t.Queue};;;0"));
            perfdata.Add(FormattableString.Invariant($"'{label}_conflicts'={t.Conflicts.Count};;1;0"));
            perfdata.Add(FormattableString.Invariant($"'{label}_failing'={t.Failing.Count};1;;0"));
            perfdata.Add(FormattableString.Invariant($"'{label}_drift_repaired'={t.DriftRepaired}c;;;0"));
            if (t.LastSuccess is { } ok)
                perfdata.Add(FormattableString.Invariant($"'{label}_last_success_age'={(now - ok).TotalSeconds:F0}s;;;0"));
        }
        foreach (string problem in s.WatchProblems)
            Raise(1, $"not watched: {problem}");
        string verdict = code switch { 0 => "OK", 1 => "WARNING", _ => "CRITICAL" };
        string summary = problems.Count > 0 ? string.Join("; ", problems) : $"{s.Targets.Count} target(s) in sync";
        return (code, $"HASYNC {verdict} - {summary} | {string.Join(' ', perfdata)}");
    }

    private static string Ago(TimeSpan span) =>
        span.TotalSeconds < 120 ? $"{span.TotalSeconds:F0} s" : span.TotalMinutes < 120 ? $"{span.TotalMinutes:F0} min" : $"{span.TotalHours:F0} h";
}
