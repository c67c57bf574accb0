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
        var json = new Option<bool>("--json") { Description = "The status file (JSON), with each target's state and summary and the daemon's as this command judges them now" };
        var command = new Command("status", "Show the daemon's state: per target connected or not, last success, queue, lag, last error") { config, json };
        command.SetAction(r =>
        {
            if (Load(r.GetValue(config)!, out string error) is not var (snapshot, path))
            {
                Console.Error.WriteLine($"hasync status: {error}");
                return 3;
            }
            if (r.GetValue(json))
                return PrintJson(snapshot, path);
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
        foreach (string missing in s.MissingPaths)
            Console.WriteLine($"  missing on the active: {missing} (listed in paths; synced once it appears)");
        string epoch = s.Role.Epoch is long number ? $", epoch {number}" : "";
        Console.WriteLine($"role: {s.Role.State} since {s.Role.Since:u}{epoch} ({s.Role.Detail})");
        if (!s.Role.Configured)
            Console.WriteLine("  warning: no role check is configured; set 'role:' (vip, command or always) so that a passive node never pushes");
        else if (s.Role.State != "active")
            Console.WriteLine("  not pushing: only the active node pushes");
        foreach (var t in s.Targets)
        {
            var health = TargetHealth.Of(s, running, t, now, TargetHealth.Thresholds.Default);
            string last = t.LastSuccess is { } ok ? $"last success {TargetHealth.Ago(now - ok)} ago" : "no success yet";
            Console.WriteLine($"{t.Name}: {health.Summary}; {last}; {t.Pushed} pushed, {t.Resyncs} resyncs");
            if (!running || health.State == TargetState.StandingBy)
                continue; // what the daemon last knew of a session is no fact now
            if (t.LastError is { } error)
                Console.WriteLine($"  last error ({TargetHealth.Ago(now - (t.LastErrorAt ?? now))} ago): {error}");
            foreach (var c in t.Conflicts)
                Console.WriteLine($"  CONFLICT {c.Path} (since {c.Since:u}): {c.Message}");
            foreach (var f in t.Failing)
                Console.WriteLine($"  FAILING {f.Path} ({f.Attempts} {(f.Attempts == 1 ? "try" : "tries")} since {f.Since:u}, next {(f.NextTry > now ? $"in {TargetHealth.Ago(f.NextTry - now)}" : "now")}): {f.Error}");
            if (t.DriftRepaired > 0)
                Console.WriteLine($"  self-check: {t.DriftRepaired} path(s) found differing from what the daemon believed, and repaired (see the log; please report it)");
        }
        return running ? 0 : 3;
    }

    /// <summary>The status file as the daemon wrote it, with what <see cref="TargetHealth"/> makes of it now: a stopped
    /// daemon's last words about its sessions are no claim that a target is connected.</summary>
    private static int PrintJson(DaemonSnapshot s, string path)
    {
        var now = DateTimeOffset.UtcNow;
        bool running = StatusFile.IsRunning(s, now, out string why);
        var document = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        document["daemon"] = new System.Text.Json.Nodes.JsonObject { ["running"] = running, ["problem"] = running ? null : why };
        var targets = document["targets"]!.AsArray();
        for (int i = 0; i < s.Targets.Count && i < targets.Count; i++)
        {
            var health = TargetHealth.Of(s, running, s.Targets[i], now, TargetHealth.Thresholds.Default);
            targets[i]!["state"] = health.StateName;
            targets[i]!["summary"] = health.Summary;
        }
        Console.WriteLine(document.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        return running ? 0 : 3;
    }

    /// <summary>The plugin's verdict and line: each target's <see cref="TargetHealth"/> with these thresholds (OK only when the
    /// daemon has no reason to believe a passive differs), a dead daemon or a role check that cannot run CRITICAL, no role
    /// check configured or a directory not watched WARNING, a passive node standing by OK.</summary>
    internal static (int Code, string Line) Check(string configPath, double warn, double crit, DateTimeOffset now)
    {
        if (warn >= crit)
            return (3, FormattableString.Invariant($"HASYNC UNKNOWN - --warn {warn} must be below --crit {crit}"));
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
            var health = TargetHealth.Of(s, running: true, t, now, new(warn, crit));
            if (health.Level > 0)
                Raise(health.Level, $"{t.Name} {health.Summary}");
            double lag = StatusFile.Lag(t, s.Updated).TotalSeconds;
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
        foreach (string missing in s.MissingPaths)
            Raise(1, $"{missing} (listed in paths) does not exist on the active");
        string verdict = code switch { 0 => "OK", 1 => "WARNING", _ => "CRITICAL" };
        string summary = problems.Count > 0 ? string.Join("; ", problems) : $"{s.Targets.Count} target(s) in sync";
        return (code, $"HASYNC {verdict} - {summary} | {string.Join(' ', perfdata)}");
    }
}
